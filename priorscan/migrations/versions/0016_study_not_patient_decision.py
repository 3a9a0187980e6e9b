"""A person's decision that a study is, or is not, a patient's examination, with who made it, when and why.

Revision ID: 0016
Revises: 0015

Schema only: studies indexed before 0015 are checked by ``priorscan imaging recheck-not-patient`` (which reads the
sites' configured indicators, so it is run by the operator, not by the migration).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import priorscan.db

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('study') as batch_op:
        batch_op.add_column(sa.Column('not_patient_decision', sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column('not_patient_decided_by', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('not_patient_decided_at', priorscan.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('not_patient_reason', sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('study') as batch_op:
        batch_op.drop_column('not_patient_reason')
        batch_op.drop_column('not_patient_decided_at')
        batch_op.drop_column('not_patient_decided_by')
        batch_op.drop_column('not_patient_decision')
