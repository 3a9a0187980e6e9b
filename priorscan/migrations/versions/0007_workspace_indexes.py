"""workspace: a trust's requests by day and what changed since a moment (orders and alerts)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 09:00:00.000000
"""
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_imaging_order_trust_ordered', 'imaging_order', ['requesting_trust', 'ordered_at'],
                    unique=False)
    op.create_index('ix_imaging_order_trust_updated', 'imaging_order', ['requesting_trust', 'updated_at'],
                    unique=False)
    op.create_index('ix_alert_trust_updated', 'alert', ['requesting_trust', 'updated_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_alert_trust_updated', table_name='alert')
    op.drop_index('ix_imaging_order_trust_updated', table_name='imaging_order')
    op.drop_index('ix_imaging_order_trust_ordered', table_name='imaging_order')
