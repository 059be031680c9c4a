"""Claim index: (account, status, id), so a claim's `ORDER BY id LIMIT n` reads n index entries
instead of sorting every queued number of the account on each batch.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_numbers_claim", "numbers", ["account", "status", "id"])
    # Its first two columns serve every query the old index served.
    op.drop_index("ix_numbers_account_status", table_name="numbers")


def downgrade() -> None:
    op.create_index("ix_numbers_account_status", "numbers", ["account", "status"])
    op.drop_index("ix_numbers_claim", table_name="numbers")
