"""Initial schema: runs, numbers, events, inbox_messages.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# The models use a UTC-normalising TypeDecorator over this; migrations keep to plain types.
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("input_path", sa.Text(), nullable=True),
        sa.Column("input_sha256", sa.String(64), nullable=True),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("finished_at", _TS, nullable=True),
    )
    op.create_table(
        "numbers",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("e164", sa.String(20), nullable=False),
        sa.Column("alias", sa.String(64), nullable=True),
        sa.Column("subaccount", sa.String(32), nullable=True),
        sa.Column("country", sa.String(2), nullable=True),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("verification_uuid", sa.String(64), nullable=True),
        sa.Column("initiated_at", _TS, nullable=True),
        sa.Column("expires_at", _TS, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("wrong_otps", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_run_id", sa.String(36), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.UniqueConstraint("account", "e164", name="uq_numbers_account_e164"),
    )
    op.create_index("ix_numbers_account_status", "numbers", ["account", "status"])
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("number_id", sa.Integer(), sa.ForeignKey("numbers.id"), nullable=False),
        sa.Column("from_status", sa.String(20), nullable=True),
        sa.Column("to_status", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("run_id", sa.String(36), nullable=True),
        sa.Column("at", _TS, nullable=False),
    )
    op.create_index("ix_events_number_id", "events", ["number_id"])
    op.create_table(
        "inbox_messages",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("account", sa.String(64), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("external_id", sa.String(255), nullable=False),
        sa.Column("from_number", sa.String(64), nullable=True),
        sa.Column("to_number", sa.String(64), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("received_at", _TS, nullable=False),
        sa.Column("matched_e164", sa.String(20), nullable=True),
        sa.Column("code", sa.String(8), nullable=True),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint("source", "external_id", name="uq_inbox_source_external_id"),
    )
    op.create_index("ix_inbox_status", "inbox_messages", ["status"])


def downgrade() -> None:
    op.drop_index("ix_inbox_status", table_name="inbox_messages")
    op.drop_table("inbox_messages")
    op.drop_index("ix_events_number_id", table_name="events")
    op.drop_table("events")
    op.drop_index("ix_numbers_account_status", table_name="numbers")
    op.drop_table("numbers")
    op.drop_table("runs")
