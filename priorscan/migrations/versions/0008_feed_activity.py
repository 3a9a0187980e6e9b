"""core: HL7 messages per feed and minute, for feed health (priorscan status, GET /api/v1/feeds, /metrics)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 15:00:00.000000
"""
from alembic import op
import sqlalchemy as sa

import priorscan.db


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # empty at first: the roll-up reads the HL7 message log from its first row (priorscan.feed_health.roll_up)
    op.create_table('feed_activity',
    sa.Column('feed', sa.String(length=500), nullable=False),
    sa.Column('minute', priorscan.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('received', sa.Integer(), nullable=False),
    sa.Column('rejected', sa.Integer(), nullable=False),
    sa.Column('last_at', priorscan.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('feed', 'minute', name=op.f('pk_feed_activity'))
    )
    op.create_index('ix_feed_activity_minute', 'feed_activity', ['minute'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_feed_activity_minute', table_name='feed_activity')
    op.drop_table('feed_activity')
