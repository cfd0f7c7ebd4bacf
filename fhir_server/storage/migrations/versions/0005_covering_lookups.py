"""Covering lookup indexes: the reference and string lookups carry ``rkey`` (and the reference ``url``),
so a criterion that drives a search (``Task?owner=…``, ``Patient?name=smi``) is an index-only scan
instead of a heap fetch per matching index row. ``Task?owner=…&status=…&_sort=-_lastUpdated`` at 100k
resources: 31 ms cold / 3.2 ms warm → 2.3 ms (bench/RESULTS.md). On PostgreSQL the prefix index of
migration 0003 gets ``rkey`` too.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_idx_reference_lookup", table_name="idx_reference")
    op.create_index("ix_idx_reference_lookup", "idx_reference",
                    ["rtype", "param", "target_id", "target_type", "url", "rkey"])
    op.drop_index("ix_idx_string_lookup", table_name="idx_string")
    op.create_index("ix_idx_string_lookup", "idx_string", ["rtype", "param", "norm", "rkey"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_idx_string_prefix")
        op.execute("CREATE INDEX ix_idx_string_prefix ON idx_string (rtype, param, norm varchar_pattern_ops, rkey)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_idx_string_prefix")
        op.execute("CREATE INDEX ix_idx_string_prefix ON idx_string (rtype, param, norm varchar_pattern_ops)")
    op.drop_index("ix_idx_string_lookup", table_name="idx_string")
    op.create_index("ix_idx_string_lookup", "idx_string", ["rtype", "param", "norm"])
    op.drop_index("ix_idx_reference_lookup", table_name="idx_reference")
    op.create_index("ix_idx_reference_lookup", "idx_reference", ["rtype", "param", "target_id", "target_type"])
