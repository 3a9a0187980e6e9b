"""The HL7 message log holds one row per message: its unique key is the sender, MSH-10 and the content digest, so
that every message sent under one MSH-10 keeps its own row and a late re-send of any of them is recognised.

Revision ID: 0018
Revises: 0017

Rows logged before 0017 have no digest and remain one per sender and MSH-10 (a message meeting one is taken for a
re-send, as before).
"""

from __future__ import annotations

from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

_OLD = 'uq_hl7_message_log_sending_application_sending_facility_control_id'
_NEW = 'uq_hl7_message_log_sending_application_sending_facility_control_id_content_digest'


def upgrade() -> None:
    with op.batch_alter_table('hl7_message_log') as batch_op:
        batch_op.drop_constraint(op.f(_OLD), type_='unique')
        batch_op.create_unique_constraint(
            op.f(_NEW), ['sending_application', 'sending_facility', 'control_id', 'content_digest'])


def downgrade() -> None:
    # several messages under one MSH-10 cannot share the old key: the latest of each is kept
    op.execute("DELETE FROM hl7_message_log WHERE id NOT IN (SELECT MAX(id) FROM hl7_message_log "
               "GROUP BY sending_application, sending_facility, control_id)")
    with op.batch_alter_table('hl7_message_log') as batch_op:
        batch_op.drop_constraint(op.f(_NEW), type_='unique')
        batch_op.create_unique_constraint(op.f(_OLD), ['sending_application', 'sending_facility', 'control_id'])
