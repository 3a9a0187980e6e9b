"""dedupe: patient identifiers named by orders recorded before the MPI knew their patient

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 11:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a new, empty table: existing orders without a source record stay as they are (their identifiers were not kept)
    op.create_table('unattached_order_identifier',
    sa.Column('order_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('system', sa.String(length=300), nullable=False),
    sa.Column('value', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['imaging_order.id'],
                            name=op.f('fk_unattached_order_identifier_order_id_imaging_order'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('order_id', 'system', 'value', name=op.f('pk_unattached_order_identifier'))
    )
    # value first: it is the selective part, and the look-up starts from the patient's records, never from a
    # constant system (which would walk every kept NHS number)
    op.create_index('ix_unattached_order_identifier_value_system', 'unattached_order_identifier',
                    ['value', 'system'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_unattached_order_identifier_value_system', table_name='unattached_order_identifier')
    op.drop_table('unattached_order_identifier')
