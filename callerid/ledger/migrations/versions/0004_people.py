"""People (issue 12): each number's owner, the messages sent to owners, the link-signing key.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("numbers", sa.Column("owner", sa.String(254), nullable=True))
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(36), nullable=True),
        sa.Column("wave", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("owner", sa.String(254), nullable=False),
        sa.Column("numbers", sa.JSON(), nullable=False),
        sa.Column("link_id", sa.String(32), nullable=False),
        sa.Column("deadline", _TS, nullable=False),
        sa.Column("link_expires_at", _TS, nullable=False),
        sa.Column("remind_at", _TS, nullable=True),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("sent_at", _TS, nullable=True),
    )
    op.create_index("ix_notifications_run", "notifications", ["run_id", "wave"])
    op.create_table(
        "notified_numbers",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "notification_id", sa.Integer(), sa.ForeignKey("notifications.id"), nullable=False
        ),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("e164", sa.String(20), nullable=False),
        sa.Column("initiated_at", _TS, nullable=True),
    )
    op.create_index("ix_notified_numbers_notification_id", "notified_numbers", ["notification_id"])
    op.create_index("ix_notified_numbers_number", "notified_numbers", ["account", "e164"])
    op.create_table(
        "ledger_secrets",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.String(128), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ledger_secrets")
    op.drop_index("ix_notified_numbers_number", table_name="notified_numbers")
    op.drop_index("ix_notified_numbers_notification_id", table_name="notified_numbers")
    op.drop_table("notified_numbers")
    op.drop_index("ix_notifications_run", table_name="notifications")
    op.drop_table("notifications")
    # A plain DROP COLUMN (SQLite >= 3.35): a batch copy of `numbers` would trip over the
    # triggers 0003 put on it.
    op.drop_column("numbers", "owner")
