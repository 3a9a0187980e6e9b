"""imaging: the device that made a study (manufacturer, model, station), for dose audits per scanner

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 17:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # empty for studies indexed before: filled when a study's objects arrive again (a poll re-reads grown studies)
    with op.batch_alter_table('study') as batch:
        batch.add_column(sa.Column('manufacturer', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('model_name', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('station_name', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('study') as batch:
        batch.drop_column('station_name')
        batch.drop_column('model_name')
        batch.drop_column('manufacturer')
