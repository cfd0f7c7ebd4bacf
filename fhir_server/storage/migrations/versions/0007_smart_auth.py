"""SMART authorization state (issue 7): clients, users, authorization codes, EHR launch contexts, tokens,
replay-protection ``jti``s of client assertions and the server's signing keys (``storage/schema.py``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oauth_client",
        sa.Column("client_id", sa.String(128), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("auth_method", sa.String(32), nullable=False),
        sa.Column("secret_hash", sa.Text(), nullable=True),
        sa.Column("redirect_uris", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("jwks", sa.Text(), nullable=True),
        sa.Column("jwks_uri", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "oauth_user",
        sa.Column("username", sa.String(128), primary_key=True),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("fhir_user", sa.String(200), nullable=True),
        sa.Column("display", sa.String(200), nullable=True),
        sa.Column("roles", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "oauth_code",
        sa.Column("code_hash", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("username", sa.String(128), nullable=True),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("code_challenge", sa.String(128), nullable=True),
        sa.Column("code_challenge_method", sa.String(16), nullable=True),
        sa.Column("nonce", sa.Text(), nullable=True),
        sa.Column("patient", sa.String(64), nullable=True),
        sa.Column("encounter", sa.String(64), nullable=True),
        sa.Column("fhir_user", sa.String(200), nullable=True),
        sa.Column("context", sa.Text(), nullable=True),
        sa.Column("grant_id", sa.String(64), nullable=False),
        sa.Column("issued_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("used", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "oauth_launch",
        sa.Column("launch_hash", sa.String(64), primary_key=True),
        sa.Column("patient", sa.String(64), nullable=True),
        sa.Column("encounter", sa.String(64), nullable=True),
        sa.Column("fhir_user", sa.String(200), nullable=True),
        sa.Column("context", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(128), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "oauth_token",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("username", sa.String(128), nullable=True),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("patient", sa.String(64), nullable=True),
        sa.Column("encounter", sa.String(64), nullable=True),
        sa.Column("fhir_user", sa.String(200), nullable=True),
        sa.Column("context", sa.Text(), nullable=True),
        sa.Column("grant_id", sa.String(64), nullable=False),
        sa.Column("issued_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_oauth_token_grant", "oauth_token", ["grant_id"])
    op.create_table(
        "oauth_jti",
        sa.Column("client_id", sa.String(128), primary_key=True),
        sa.Column("jti", sa.String(256), primary_key=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "oauth_key",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("alg", sa.String(16), nullable=False),
        sa.Column("private_jwk", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
    )


def downgrade() -> None:
    for name in ("oauth_key", "oauth_jti", "oauth_token", "oauth_launch", "oauth_code", "oauth_user", "oauth_client"):
        op.drop_table(name)
