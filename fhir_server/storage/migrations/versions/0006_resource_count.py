"""``resource_count``: live resources per type, kept by the write transactions (``storage/schema.py``), so
that ``_total`` of a type-only search (``GET Observation?_total=accurate``) reads a few primary-key rows
instead of counting the type's rows (255 ms for 300k Observations at 1M resources on PostgreSQL).

The table is filled here from the resources already stored (slot 0 of each type). Servers of an earlier
version do not keep it: stop them before upgrading, or run ``cares-fhir db recount`` once they are gone.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# ``NOT deleted`` reads the same on PostgreSQL (boolean) and SQLite (0/1), like ix_resource_live of 0003
BACKFILL = ("INSERT INTO resource_count (rtype, slot, n) "
            "SELECT rtype, 0, count(*) FROM resource WHERE NOT deleted GROUP BY rtype")


def upgrade() -> None:
    op.create_table(
        "resource_count",
        sa.Column("rtype", sa.String(64), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("rtype", "slot"),
    )
    op.execute(BACKFILL)


def downgrade() -> None:
    op.drop_table("resource_count")
