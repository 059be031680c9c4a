"""Scale (issue 14): per-run status counts kept by the database, read in O(1) of the run's size.

`run_numbers` says which numbers a run registered; `run_counts` holds signed deltas that triggers
write in the same transaction as each status change (see `callerid.ledger.run_counts`). Runs that
are not finished when this migration runs get their membership from `numbers.last_run_id` (the
closest record the old schema has); finished runs need none.

`rate_grants`: the account's request budget shared by processes on a PostgreSQL ledger without a
Prefect server (`callerid.ledger.rate_budget`).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from callerid.ledger.run_counts import drop_triggers, install_triggers

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_numbers",
        sa.Column("run_id", sa.String(36), primary_key=True),
        sa.Column("number_id", sa.Integer(), sa.ForeignKey("numbers.id"), primary_key=True),
    )
    op.create_index("ix_run_numbers_number", "run_numbers", ["number_id"])
    op.create_table(
        "run_counts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
    )
    op.create_index("ix_run_counts_run", "run_counts", ["run_id", "status"])
    op.create_table(
        "rate_grants",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
    )
    op.create_index("ix_rate_grants_account_at", "rate_grants", ["account", "at"])
    # The trigger SQL is shared with `create_all` (tests); a later change to it must come with a
    # migration of its own that drops and recreates the triggers.
    install_triggers(op.get_bind())
    op.execute(
        "INSERT INTO run_numbers (run_id, number_id) "
        "SELECT n.last_run_id, n.id FROM numbers n JOIN runs r ON r.id = n.last_run_id "
        "WHERE r.finished_at IS NULL"
    )


def downgrade() -> None:
    drop_triggers(op.get_bind())
    op.drop_index("ix_rate_grants_account_at", table_name="rate_grants")
    op.drop_table("rate_grants")
    op.drop_index("ix_run_counts_run", table_name="run_counts")
    op.drop_table("run_counts")
    op.drop_index("ix_run_numbers_number", table_name="run_numbers")
    op.drop_table("run_numbers")
