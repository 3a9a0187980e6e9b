"""bulk load: where a `priorscan backfill` stopped (bulk_cursor) and the items it set aside (bulk_deferred)

Revision ID: 0013
Revises: 0009
Create Date: 2026-12-06 18:00:00.000000
"""
from alembic import op
import sqlalchemy as sa

import priorscan.db

revision = '0013'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'bulk_cursor',
        sa.Column('load_key', sa.String(length=64), nullable=False),
        sa.Column('stage', sa.String(length=40), nullable=False),
        sa.Column('item_file', sa.String(length=1000), nullable=False),
        sa.Column('position', sa.BigInteger(), nullable=False),
        sa.Column('finished', sa.Boolean(), nullable=False),
        sa.Column('updated_at', priorscan.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('load_key', 'stage', 'item_file', name=op.f('pk_bulk_cursor')),
    )
    op.create_table(
        'bulk_deferred',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('load_key', sa.String(length=64), nullable=False),
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.Column('content_type', sa.String(length=40), nullable=False),
        sa.Column('source', sa.String(length=500), nullable=False),
        sa.Column('raw', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_bulk_deferred')),
        sa.UniqueConstraint('load_key', 'seq', name=op.f('uq_bulk_deferred_load_key_seq')),
    )


def downgrade() -> None:
    op.drop_table('bulk_deferred')
    op.drop_table('bulk_cursor')
