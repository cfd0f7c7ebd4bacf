"""Full-text search rows for ``_text`` / ``_content`` (``indexing/text.py``): the ``idx_text`` table.

On PostgreSQL also a GIN index on ``to_tsvector('simple', content)`` and the match function the search
compiler calls, ``cares_text_match(content, words)`` = every space-separated word of ``words`` is a
prefix of a lexeme of ``content``. It is a one-expression SQL function, so the planner inlines it and
the GIN index serves the match. (SQLite gets a Python function of the same name per connection.)
Existing resources get their rows from ``cares-fhir reindex`` / ``POST $reindex``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_MATCH_FUNCTION = """
CREATE OR REPLACE FUNCTION cares_text_match(content text, words text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT to_tsvector('simple'::regconfig, content)
             @@ to_tsquery('simple'::regconfig, replace(words, ' ', ':* & ') || ':*') $$
"""


def upgrade() -> None:
    op.create_table(
        "idx_text",
        sa.Column("rkey", sa.BigInteger(), nullable=False),
        sa.Column("rtype", sa.String(64), nullable=False),
        sa.Column("param", sa.String(100), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
    )
    op.create_index("ix_idx_text_rkey", "idx_text", ["rkey"])
    op.create_index("ix_idx_text_lookup", "idx_text", ["rtype", "param"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE INDEX ix_idx_text_tsv ON idx_text USING gin (to_tsvector('simple'::regconfig, content))")
        op.execute(_MATCH_FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS cares_text_match(text, text)")
    op.drop_table("idx_text")
