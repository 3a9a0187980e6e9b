"""mpi: a further identifier's use (``old`` once replaced by ADT A47: never matched or resolved again)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 10:00:00.000000
"""
import sqlalchemy as sa
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('source_identifier') as batch:
        batch.add_column(sa.Column('use', sa.String(length=10), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('source_identifier') as batch:
        batch.drop_column('use')
