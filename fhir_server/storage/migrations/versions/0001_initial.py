"""Initial schema: resource, resource_history and the search index tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_RKEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# (table, value columns, lookup index columns after rtype+param)
_INDEX_TABLES = [
    ("idx_token", [("system", sa.String(255), True), ("code", sa.String(255), True),
                   ("text", sa.String(255), True)], ["code", "system"]),
    ("idx_string", [("norm", sa.String(255), False), ("exact", sa.String(255), False)], ["norm"]),
    ("idx_reference", [("target_type", sa.String(64), True), ("target_id", sa.String(64), True),
                       ("url", sa.String(255), True)], ["target_id", "target_type"]),
    ("idx_date", [("low", sa.BigInteger(), False), ("high", sa.BigInteger(), False)], ["low", "high"]),
    ("idx_uri", [("uri", sa.String(255), False)], ["uri"]),
    ("idx_number", [("value", sa.Float(), False)], ["value"]),
    ("idx_quantity", [("system", sa.String(255), True), ("code", sa.String(255), True),
                      ("value", sa.Float(), False)], ["value"]),
]


def upgrade() -> None:
    op.create_table(
        "resource",
        sa.Column("rkey", _RKEY, primary_key=True, autoincrement=True),
        sa.Column("rtype", sa.String(64), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("last_updated", sa.BigInteger(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.UniqueConstraint("rtype", "id", name="uq_resource_type_id"),
    )
    op.create_index("ix_resource_type_updated", "resource", ["rtype", "last_updated"])
    op.create_table(
        "resource_history",
        sa.Column("rkey", sa.BigInteger(), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("rtype", sa.String(64), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("last_updated", sa.BigInteger(), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
    )
    op.create_index("ix_history_type_updated", "resource_history", ["rtype", "last_updated"])
    op.create_index("ix_history_updated", "resource_history", ["last_updated"])
    for name, cols, lookup in _INDEX_TABLES:
        op.create_table(
            name,
            sa.Column("rkey", sa.BigInteger(), nullable=False),
            sa.Column("rtype", sa.String(64), nullable=False),
            sa.Column("param", sa.String(100), nullable=False),
            *[sa.Column(c, t, nullable=n) for c, t, n in cols],
        )
        op.create_index(f"ix_{name}_rkey", name, ["rkey"])
        op.create_index(f"ix_{name}_lookup", name, ["rtype", "param", *lookup])
    op.create_index("ix_idx_reference_target", "idx_reference", ["target_type", "target_id"])


def downgrade() -> None:
    for name, _, _ in reversed(_INDEX_TABLES):
        op.drop_table(name)
    op.drop_table("resource_history")
    op.drop_table("resource")
