"""Alembic environment: runs migrations on the connection handed in by ``storage.migrate``."""

from __future__ import annotations

from alembic import context

from fhir_server.storage.schema import include_object, metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                  include_object=include_object)
with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        # two servers starting at once must not migrate concurrently
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7243301)")
    context.run_migrations()
