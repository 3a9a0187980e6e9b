"""A study that is not a patient's examination (QA, physics, phantom test), with the evidence that says so.

Revision ID: 0015
Revises: 0014

Empty for studies indexed before: a test study already indexed is recognised when its objects arrive again (a poll
re-reads grown studies, a re-sent object); until then it is treated as before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('study') as batch_op:
        batch_op.add_column(sa.Column('not_patient', sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('study') as batch_op:
        batch_op.drop_column('not_patient')
