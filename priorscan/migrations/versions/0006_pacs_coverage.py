"""imaging: objects received, IOCM rejections, reports, and what a PACS last said about each study

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 14:23:01.601065
"""
from alembic import op
import sqlalchemy as sa
import priorscan.db


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('instance_rejection',
    sa.Column('sop_instance_uid', sa.String(length=64), nullable=False),
    sa.Column('study_instance_uid', sa.String(length=64), nullable=False),
    sa.Column('series_instance_uid', sa.String(length=64), nullable=True),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('meaning', sa.String(length=120), nullable=False),
    sa.Column('note_uid', sa.String(length=64), nullable=True),
    sa.Column('recorded_at', priorscan.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('sop_instance_uid', name=op.f('pk_instance_rejection'))
    )
    with op.batch_alter_table('instance_rejection', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_instance_rejection_study_instance_uid'), ['study_instance_uid'], unique=False)

    op.create_table('study_instance',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('study_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('sop_instance_uid', sa.String(length=64), nullable=False),
    sa.Column('series_instance_uid', sa.String(length=64), nullable=True),
    sa.Column('sop_class_uid', sa.String(length=64), nullable=True),
    sa.Column('modality', sa.String(length=16), nullable=True),
    sa.Column('dose', priorscan.db.JSONType(), nullable=True),
    sa.Column('received_at', priorscan.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_study_instance_study_id_study'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_study_instance')),
    sa.UniqueConstraint('sop_instance_uid', name=op.f('uq_study_instance_sop_instance_uid'))
    )
    with op.batch_alter_table('study_instance', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_study_instance_study_id'), ['study_id'], unique=False)

    op.create_table('study_report',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('study_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('source', sa.String(length=10), nullable=False),
    sa.Column('report_id', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=True),
    sa.Column('conclusion', sa.Text(), nullable=True),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('issued_at', priorscan.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', priorscan.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_study_report_study_id_study'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_study_report')),
    sa.UniqueConstraint('source', 'report_id', name=op.f('uq_study_report_source_report_id'))
    )
    with op.batch_alter_table('study_report', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_study_report_study_id'), ['study_id'], unique=False)

    with op.batch_alter_table('study', schema=None) as batch_op:
        batch_op.add_column(sa.Column('patient_source', sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column('remote_source', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('remote_fingerprint', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('withdrawn', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('withdrawn_at', priorscan.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_study_remote_source_date', ['remote_source', 'study_date'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('study', schema=None) as batch_op:
        batch_op.drop_index('ix_study_remote_source_date')
        batch_op.drop_column('withdrawn_at')
        batch_op.drop_column('withdrawn')
        batch_op.drop_column('remote_fingerprint')
        batch_op.drop_column('remote_source')
        batch_op.drop_column('patient_source')

    with op.batch_alter_table('study_report', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_study_report_study_id'))

    op.drop_table('study_report')
    with op.batch_alter_table('study_instance', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_study_instance_study_id'))

    op.drop_table('study_instance')
    with op.batch_alter_table('instance_rejection', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_instance_rejection_study_instance_uid'))

    op.drop_table('instance_rejection')
