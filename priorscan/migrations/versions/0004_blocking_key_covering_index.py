"""mpi: blocking keys indexed with their record, so that candidate look-ups read the index alone

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 18:40:00.000000
"""
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the new index first, so that look-ups by key always have one
    op.create_index('ix_blocking_key_key_record', 'blocking_key', ['key', 'source_record_id'], unique=False)
    op.drop_index('ix_blocking_key_key', table_name='blocking_key')


def downgrade() -> None:
    op.create_index('ix_blocking_key_key', 'blocking_key', ['key'], unique=False)
    op.drop_index('ix_blocking_key_key_record', table_name='blocking_key')
