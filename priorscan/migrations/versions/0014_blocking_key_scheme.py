"""identity: which blocking keys are stored (blocking_key_scheme), so a relink refreshes them only when they change

Revision ID: 0014
Revises: 0011
Create Date: 2026-12-07 06:30:00.000000
"""
from alembic import op
import sqlalchemy as sa

import priorscan.db

revision = '0014'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'blocking_key_scheme',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('scheme', sa.String(length=100), nullable=False),
        sa.Column('refreshed_at', priorscan.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_blocking_key_scheme')),
    )


def downgrade() -> None:
    op.drop_table('blocking_key_scheme')
