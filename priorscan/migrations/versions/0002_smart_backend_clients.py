"""SMART Backend Services: registered backend clients, their used assertion ids, and expiring access tokens

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 09:00:00.000000
"""
from alembic import op
import sqlalchemy as sa
import priorscan.db


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('smart_backend_client',
    sa.Column('id', _ID, nullable=False),
    sa.Column('client_id', sa.String(length=200), nullable=False),
    sa.Column('jwks', priorscan.db.JSONType(), nullable=True),
    sa.Column('jwks_url', sa.String(length=1000), nullable=True),
    sa.Column('scopes', priorscan.db.JSONType(), nullable=False),
    sa.Column('created_at', priorscan.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('disabled_at', priorscan.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_smart_backend_client')),
    sa.UniqueConstraint('client_id', name=op.f('uq_smart_backend_client_client_id'))
    )
    op.create_table('smart_seen_jti',
    sa.Column('client_id', sa.String(length=200), nullable=False),
    sa.Column('jti', sa.String(length=200), nullable=False),
    sa.Column('expires_at', priorscan.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('client_id', 'jti', name=op.f('pk_smart_seen_jti'))
    )
    op.create_index(op.f('ix_smart_seen_jti_expires_at'), 'smart_seen_jti', ['expires_at'], unique=False)
    # nullable, so that SQLite adds it in place; tokens from `priorscan token create` keep no expiry
    op.add_column('api_client', sa.Column('expires_at', priorscan.db.UTCDateTime(timezone=True), nullable=True))
    op.create_index(op.f('ix_api_client_expires_at'), 'api_client', ['expires_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_api_client_expires_at'), table_name='api_client')
    with op.batch_alter_table('api_client') as batch:
        batch.drop_column('expires_at')
    op.drop_index(op.f('ix_smart_seen_jti_expires_at'), table_name='smart_seen_jti')
    op.drop_table('smart_seen_jti')
    op.drop_table('smart_backend_client')
