"""web page: sessions ended by signing out, and sign-in attempt counters settled in the database

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 18:00:00.000000
"""
from alembic import op
import sqlalchemy as sa

import priorscan.db


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('web_session_ended',
    sa.Column('session_id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('ended_at', priorscan.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', priorscan.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('session_id', name=op.f('pk_web_session_ended'))
    )
    with op.batch_alter_table('web_session_ended', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_web_session_ended_expires_at'), ['expires_at'], unique=False)
    op.create_table('sign_in_counter',
    sa.Column('key', sa.String(length=300), nullable=False),
    sa.Column('window_started_at', priorscan.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_sign_in_counter'))
    )


def downgrade() -> None:
    op.drop_table('sign_in_counter')
    with op.batch_alter_table('web_session_ended', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_web_session_ended_expires_at'))
    op.drop_table('web_session_ended')
