"""The database schema (SQLAlchemy Core), shared by SQLite and PostgreSQL.

This module is the single description of the current schema; Alembic migrations in
``storage/migrations`` create and evolve it and a test checks that they agree.

Layout
* ``resource``          – current version of every resource (one row per type+id, deleted ones kept
                          with ``body`` NULL so that read answers 410 and versions continue on re-create)
* ``resource_history``  – every version ever written (including the current one and deletions)
* ``idx_*``             – search index rows, one table per search-parameter type, keyed by
                          ``rkey`` (the resource row) and carrying ``rtype`` + ``param`` so that a
                          search on one type and parameter is an index range scan.
* ``resource_count``    – how many live (not deleted) resources each type has, as the sum of ``n`` over
                          the type's slot rows: ``_total`` of a type-only search (``GET Observation``)
                          without a count over the type's rows (see :data:`resource_count`).
* ``idx_text``          – full-text rows of ``_text`` / ``_content`` (``indexing/text.py``): the
                          normalised words of the narrative / of the whole resource. On PostgreSQL
                          migration 0004 adds a GIN index on ``to_tsvector('simple', content)`` and
                          the match function ``cares_text_match``; both are PostgreSQL-only DDL and
                          so not described here (SQLite registers the function per connection).

Times are integers: microseconds since the Unix epoch, UTC. Dates in index rows are stored as the
inclusive range [low, high] that the value covers at its precision (``2024-03`` covers the month).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a bigint identity.
_RKEY = BigInteger().with_variant(Integer(), "sqlite")

resource = Table(
    "resource",
    metadata,
    Column("rkey", _RKEY, primary_key=True, autoincrement=True),
    Column("rtype", String(64), nullable=False),
    Column("id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("last_updated", BigInteger, nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("body", Text, nullable=True),
    UniqueConstraint("rtype", "id", name="uq_resource_type_id"),
    Index("ix_resource_type_updated", "rtype", "last_updated"),
    # a type's live resources in page order; whole-type counts as index-only scans (migration 0003)
    Index("ix_resource_live", "rtype", "rkey", postgresql_where=text("NOT deleted"),
          sqlite_where=text("NOT deleted")),
)

resource_history = Table(
    "resource_history",
    metadata,
    Column("rkey", BigInteger, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("rtype", String(64), nullable=False),
    Column("id", String(64), nullable=False),
    Column("last_updated", BigInteger, nullable=False),
    Column("method", String(8), nullable=False),
    Column("body", Text, nullable=True),
    Index("ix_history_type_updated", "rtype", "last_updated"),
    Index("ix_history_updated", "last_updated"),
)

resource_count = Table(
    "resource_count",
    metadata,
    Column("rtype", String(64), primary_key=True),
    Column("slot", Integer, primary_key=True),
    Column("n", BigInteger, nullable=False),
)
"""Live resources per type (migration 0006): ``count(*) FROM resource WHERE rtype = … AND NOT deleted``
is ``sum(n) WHERE rtype = …`` — at most :data:`~fhir_server.storage.db.COUNT_SLOTS` primary-key rows
instead of an index scan over every resource of the type (255 ms for 300k Observations at 1M resources).

Maintained by the write transactions themselves, so it is exact at every commit: ``Repository.save`` /
``delete`` tell the connection +1 / -1 (``Conn.count_delta``) and the connection adds the sums to the
counter rows with one upsert just before COMMIT (in the same round trip on PostgreSQL), so a rolled back
transaction counts nothing. Writers spread over slots (one per transaction) so that concurrent creates of
one type do not queue on one row; ``n`` of one slot may go negative, only the sum means anything.
``Repository.recount`` (``cares-fhir db recount``) rebuilds the table from ``resource``."""


def _index_table(name: str, *columns: Column, lookup: tuple[str, ...]) -> Table:
    return Table(
        name,
        metadata,
        Column("rkey", BigInteger, nullable=False),
        Column("rtype", String(64), nullable=False),
        Column("param", String(100), nullable=False),
        *columns,
        Index(f"ix_{name}_rkey", "rkey"),
        Index(f"ix_{name}_lookup", "rtype", "param", *lookup),
    )


idx_token = _index_table(
    "idx_token",
    Column("system", String(255), nullable=True),
    Column("code", String(255), nullable=True),
    Column("text", String(255), nullable=True),
    lookup=("code", "system"),
)
idx_string = _index_table(
    "idx_string",
    Column("norm", String(255), nullable=False),
    Column("exact", String(255), nullable=False),
    lookup=("norm", "rkey"),  # covering: index-only when the criterion drives the search (migration 0005)
)
idx_reference = _index_table(
    "idx_reference",
    Column("target_type", String(64), nullable=True),
    Column("target_id", String(64), nullable=True),
    Column("url", String(255), nullable=True),
    lookup=("target_id", "target_type", "url", "rkey"),  # covering (migration 0005)
)
Index("ix_idx_reference_target", idx_reference.c.target_type, idx_reference.c.target_id)
# token matches in page (rkey) order, so a broad token search stops after one page (migration 0002)
Index("ix_idx_token_ordered", idx_token.c.rtype, idx_token.c.param, idx_token.c.code, idx_token.c.rkey)
idx_date = _index_table(
    "idx_date",
    Column("low", BigInteger, nullable=False),
    Column("high", BigInteger, nullable=False),
    lookup=("low", "high"),
)
idx_uri = _index_table(
    "idx_uri",
    Column("uri", String(255), nullable=False),
    lookup=("uri",),
)
idx_number = _index_table(
    "idx_number",
    Column("value", Float, nullable=False),
    lookup=("value",),
)
idx_quantity = _index_table(
    "idx_quantity",
    Column("system", String(255), nullable=True),
    Column("code", String(255), nullable=True),
    Column("value", Float, nullable=False),
    lookup=("value",),
)

idx_text = _index_table(
    "idx_text",
    Column("content", Text, nullable=False),
    lookup=(),
)

# -- SMART authorization state (``fhir_server/auth``, migration 0007) ------------------------------------------
# Secrets are never stored: client secrets and passwords as argon2 hashes, codes / tokens / launch values as
# SHA-256 hashes. Times are µs since the epoch, like the rest of the schema.

oauth_client = Table(
    "oauth_client",
    metadata,
    Column("client_id", String(128), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("auth_method", String(32), nullable=False),  # none | client_secret_basic | private_key_jwt
    Column("secret_hash", Text, nullable=True),
    Column("redirect_uris", Text, nullable=False),  # JSON array
    Column("scope", Text, nullable=False),  # the scopes the client may be granted
    Column("jwks", Text, nullable=True),  # JSON Web Key Set (private_key_jwt)
    Column("jwks_uri", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("disabled", Boolean, nullable=False),
)

oauth_user = Table(
    "oauth_user",
    metadata,
    Column("username", String(128), primary_key=True),
    Column("password_hash", Text, nullable=False),
    Column("fhir_user", String(200), nullable=True),  # Practitioner/…, PractitionerRole/…, RelatedPerson/…, Patient/…
    Column("display", String(200), nullable=True),
    Column("roles", Text, nullable=False),  # JSON array, e.g. ["care-coordinator"], ["auditor"]
    Column("created_at", BigInteger, nullable=False),
    Column("disabled", Boolean, nullable=False),
)

oauth_code = Table(
    "oauth_code",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("client_id", String(128), nullable=False),
    Column("username", String(128), nullable=True),
    Column("redirect_uri", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("code_challenge", String(128), nullable=True),
    Column("code_challenge_method", String(16), nullable=True),
    Column("nonce", Text, nullable=True),
    Column("patient", String(64), nullable=True),
    Column("encounter", String(64), nullable=True),
    Column("fhir_user", String(200), nullable=True),
    Column("context", Text, nullable=True),  # JSON: launch context extras
    Column("grant_id", String(64), nullable=False),
    Column("issued_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("used", Boolean, nullable=False),
)

oauth_launch = Table(
    "oauth_launch",
    metadata,
    Column("launch_hash", String(64), primary_key=True),
    Column("patient", String(64), nullable=True),
    Column("encounter", String(64), nullable=True),
    Column("fhir_user", String(200), nullable=True),
    Column("context", Text, nullable=True),  # JSON: intent, smart_style_url, need_patient_banner, fhirContext
    Column("created_by", String(128), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)

oauth_token = Table(
    "oauth_token",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),  # access | refresh
    Column("client_id", String(128), nullable=False),
    Column("username", String(128), nullable=True),
    Column("scope", Text, nullable=False),
    Column("patient", String(64), nullable=True),
    Column("encounter", String(64), nullable=True),
    Column("fhir_user", String(200), nullable=True),
    Column("context", Text, nullable=True),
    Column("grant_id", String(64), nullable=False),
    Column("issued_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("revoked", Boolean, nullable=False),
    Index("ix_oauth_token_grant", "grant_id"),
)

oauth_jti = Table(
    "oauth_jti",
    metadata,
    Column("client_id", String(128), primary_key=True),
    Column("jti", String(256), primary_key=True),
    Column("expires_at", BigInteger, nullable=False),
)

oauth_key = Table(
    "oauth_key",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("alg", String(16), nullable=False),
    Column("private_jwk", Text, nullable=False),  # JSON (the server's signing key; never served)
    Column("created_at", BigInteger, nullable=False),
    Column("active", Boolean, nullable=False),  # signs new tokens; inactive keys stay published until removed
)


POSTGRESQL_ONLY_INDEXES = frozenset({"ix_idx_text_tsv", "ix_idx_string_prefix"})
"""Indexes that migrations create on PostgreSQL only, with raw DDL SQLite cannot run (the prefix index
``idx_string (rtype, param, norm varchar_pattern_ops)`` of migration 0003, the GIN index on
``to_tsvector('simple', idx_text.content)`` of migration 0004); schema comparisons leave them out."""


def include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Alembic's ``include_object`` hook for schema comparisons: skips :data:`POSTGRESQL_ONLY_INDEXES`."""
    return not (type_ == "index" and name in POSTGRESQL_ONLY_INDEXES)


INDEX_TABLES: dict[str, Table] = {
    "token": idx_token,
    "string": idx_string,
    "reference": idx_reference,
    "date": idx_date,
    "uri": idx_uri,
    "number": idx_number,
    "quantity": idx_quantity,
    "text": idx_text,
}
