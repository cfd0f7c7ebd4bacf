"""Settings: command-line flags override environment variables (``CARES_FHIR_*``) override defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

DEFAULT_SQLITE_PATH = Path.home() / ".local" / "share" / "cares-fhir" / "cares-fhir.sqlite3"


def _default_database_url() -> str:
    return f"sqlite:///{DEFAULT_SQLITE_PATH}"


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    database_url: str = field(default_factory=_default_database_url)
    #: Public base URL of the FHIR endpoint; derived from host/port when empty.
    base_url: str = ""
    demo: bool = False
    no_auth: bool = False  # True (--no-auth, development only): no token needed, nothing enforced or audited
    #: SMART/OAuth lifetimes (seconds): access tokens, refresh tokens, authorization codes, EHR launch values
    access_token_seconds: int = 3600
    #: backend services (client_credentials) access tokens: short-lived, backend-services.html says at most 300
    backend_token_seconds: int = 300
    refresh_token_seconds: int = 30 * 24 * 3600
    code_seconds: int = 60
    launch_seconds: int = 300
    #: login and token endpoint attempts allowed per client address and minute
    auth_rate_per_minute: int = 20
    max_body_bytes: int = 16 * 1024 * 1024
    max_json_depth: int = 64
    default_count: int = 20
    max_count: int = 1000
    max_bundle_entries: int = 10_000
    pool_size: int = 8
    log_level: str = "info"
    #: JSON file of profile rules (profile_checks.py); empty: the CARES guide's default rules
    profile_rules: str = ""
    #: a meta.profile the server does not know: "warn" (default) or "reject" (422)
    unknown_profile: str = "warn"
    #: $validate also reports absent mustSupport elements of the profiles (information issues)
    strict_must_support: bool = False

    @property
    def fhir_base(self) -> str:
        return (self.base_url or f"http://{self.host}:{self.port}/fhir").rstrip("/")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``CARES_FHIR_<NAME>`` variables, then explicit (non-None) overrides."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"CARES_FHIR_{f.name.upper()}")
            if raw is None:
                continue
            if f.type in ("bool", bool):
                values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
            elif f.type in ("int", int):
                values[f.name] = int(raw)
            else:
                values[f.name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
