"""Search at a million resources (bench/RESULTS.md, "Search at scale").

* ``ix_resource_live`` — ``resource (rtype, rkey) WHERE NOT deleted``: a type's live resources in page
  order, and ``_total=accurate`` over a whole type as an index-only count (after VACUUM).
* PostgreSQL: ``ix_idx_string_prefix`` — ``idx_string (rtype, param, norm varchar_pattern_ops)``. The
  databases use a non-C collation, where PostgreSQL turns ``norm LIKE 'smi%'`` into an index range
  only with a ``*_pattern_ops`` index: ``Patient?name=smi`` read every Patient name row (47 ms at 1M).
* PostgreSQL: the token statistics cover ``system`` too. Searches with ``system|code`` filter on both,
  and the planner multiplied the system's selectivity in as if independent (1,345 rows expected for
  11,845), then hashed and sorted every match of ``Observation?code=…&date=…`` (253–329 ms → 3–16 ms).

Token texts (``idx_token.text``) are stored normalised since this version (``:text`` is string
matching): run ``cares-fhir reindex`` on a database indexed by an earlier version.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_resource_live", "resource", ["rtype", "rkey"],
                    postgresql_where=sa.text("NOT deleted"), sqlite_where=sa.text("NOT deleted"))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE INDEX ix_idx_string_prefix ON idx_string (rtype, param, norm varchar_pattern_ops)")
        op.execute("DROP STATISTICS IF EXISTS st_idx_token_lookup")
        op.execute("CREATE STATISTICS st_idx_token_lookup (mcv, dependencies) ON rtype, param, system, code"
                   " FROM idx_token")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP STATISTICS IF EXISTS st_idx_token_lookup")
        op.execute("CREATE STATISTICS st_idx_token_lookup (mcv, dependencies) ON rtype, param, code FROM idx_token")
        op.execute("DROP INDEX IF EXISTS ix_idx_string_prefix")
    op.drop_index("ix_resource_live", table_name="resource")
