"""The HL7 message log keeps a digest of each message's content, so that a sender's MSH-10 used again for another
message is told from a re-send of the same one.

Revision ID: 0017
Revises: 0016

Rows logged before have none: a message meeting such a row is taken for a re-send, as before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('hl7_message_log') as batch_op:
        batch_op.add_column(sa.Column('content_digest', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('hl7_message_log') as batch_op:
        batch_op.drop_column('content_digest')
