"""imaging and dedupe: every body region a study or an order names ("CT head and cervical spine"), not only the first

Revision ID: 0010
Revises: 0013
Create Date: 2026-12-06 18:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # empty for rows written before: they compare by body_region alone, as before, until the study or order is sent
    # again (space-separated region names, body_region first)
    with op.batch_alter_table('study') as batch:
        batch.add_column(sa.Column('body_regions', sa.String(length=200), nullable=True))
    with op.batch_alter_table('imaging_order') as batch:
        batch.add_column(sa.Column('body_regions', sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('imaging_order') as batch:
        batch.drop_column('body_regions')
    with op.batch_alter_table('study') as batch:
        batch.drop_column('body_regions')
