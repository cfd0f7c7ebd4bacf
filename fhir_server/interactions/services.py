"""What every interaction needs: settings, the repository and the search-parameter registry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhir_server.config import Settings
from fhir_server.indexing.extract import extract_rows
from fhir_server.indexing.registry import SearchParamRegistry
from fhir_server.storage.db import Database, create_database
from fhir_server.storage.repository import Repository


@dataclass
class Services:
    settings: Settings
    db: Database
    repo: Repository
    registry: SearchParamRegistry

    @classmethod
    def create(cls, settings: Settings) -> Services:
        db = create_database(settings.database_url, pool_size=settings.pool_size)
        # each server its own copy: custom SearchParameters registered on one do not leak into another
        registry = SearchParamRegistry.default().copy()

        def indexer(resource: dict[str, Any]) -> dict[str, list[tuple]]:
            return extract_rows(registry, resource)

        return cls(settings, db, Repository(db, indexer), registry)

    @property
    def base(self) -> str:
        return self.settings.fhir_base
