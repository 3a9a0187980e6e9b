"""identity: every source record's match fields hold its identifiers (own key and current further identifiers), and
its ``i:`` blocking keys are stored, so the cross-references of records stored before they were evidence link them
(H-ID-61)

Revision ID: 0019
Revises: 0018

Records written before identifiers were evidence have no ``identifiers`` in their match fields until their next
message, and a relink reads the match fields, so their cross-references were weighed by nobody. Each such record
gets ``identifiers`` as :func:`mpi.identifier_systems.identifier_tokens` makes them for a new record (its namespace
and every further identifier are stored canonical already), and the ``i:`` keys :func:`mpi.blocking.keys_of` makes of
them, so link-on-write finds it by them before any relink. Records holding ``identifiers`` already (written since, or
migrated) are left as they are, and so are records with no identifier of an evidence system (what the code writes
for them): running it again changes nothing. Works by keyset pages of record ids, one page of
records and their identifiers in memory at a time.
"""

from __future__ import annotations

import importlib
import json
from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None

#: Records read per page.
PAGE = 5_000

_RECORDS = sa.table('source_record', sa.column('id', sa.BigInteger), sa.column('namespace', sa.String),
                    sa.column('local_id', sa.String), sa.column('match_fields', sa.Text))
_IDENTIFIERS = sa.table('source_identifier', sa.column('source_record_id', sa.BigInteger),
                        sa.column('system', sa.String), sa.column('value', sa.String), sa.column('use', sa.String))
_KEYS = sa.table('blocking_key', sa.column('source_record_id', sa.BigInteger), sa.column('key', sa.String))


def _stored(text: Any) -> dict[str, Any] | None:
    """The match fields as a dict (PostgreSQL's JSONB is read as text through the column above; SQLite's JSON too)."""
    if text is None:
        return None
    fields = json.loads(text) if isinstance(text, str | bytes) else text
    return fields if isinstance(fields, dict) else None


def upgrade() -> None:
    # the shared functions, by name as priorscan.db loads the table modules (priorscan sits below mpi)
    identifier_tokens = importlib.import_module('mpi.identifier_systems').identifier_tokens
    keys_of = importlib.import_module('mpi.blocking').keys_of
    connection = op.get_bind()
    postgres = connection.dialect.name == 'postgresql'
    fields_text = sa.cast(_RECORDS.c.match_fields, sa.Text) if postgres else _RECORDS.c.match_fields
    fields_param = sa.cast(sa.bindparam('fields', type_=sa.Text), postgresql.JSONB) if postgres \
        else sa.bindparam('fields', type_=sa.Text)
    update = _RECORDS.update().where(_RECORDS.c.id == sa.bindparam('rid')).values(match_fields=fields_param)
    after = 0
    while True:
        page = connection.execute(
            sa.select(_RECORDS.c.id, _RECORDS.c.namespace, _RECORDS.c.local_id, fields_text)
            .where(_RECORDS.c.id > after).order_by(_RECORDS.c.id).limit(PAGE)).all()
        if not page:
            return
        after = int(page[-1][0])
        lacking = {int(rid): (namespace, local_id, fields) for rid, namespace, local_id, text in page
                   if (fields := _stored(text)) is not None and 'identifiers' not in fields}
        if not lacking:
            continue
        further: dict[int, list[tuple[str, str]]] = defaultdict(list)
        for rid, system, value in connection.execute(
                sa.select(_IDENTIFIERS.c.source_record_id, _IDENTIFIERS.c.system, _IDENTIFIERS.c.value)
                .where(_IDENTIFIERS.c.source_record_id.between(min(lacking), max(lacking)),
                       _IDENTIFIERS.c.use.is_(None))):
            further[int(rid)].append((system, value))
        held = {(int(rid), key) for rid, key in connection.execute(
            sa.select(_KEYS.c.source_record_id, _KEYS.c.key)
            .where(_KEYS.c.source_record_id.between(min(lacking), max(lacking)), _KEYS.c.key.like('i:%')))}
        updates: list[dict[str, Any]] = []
        keys: list[dict[str, Any]] = []
        for rid, (namespace, local_id, fields) in lacking.items():
            key = (namespace, local_id) if namespace and local_id else None
            tokens = identifier_tokens(key, further.get(rid, ()))
            if tokens is None:  # as MatchRecord.as_stored leaves it out: the record is as the code writes it
                continue
            updates.append({'rid': rid, 'fields': json.dumps({**fields, 'identifiers': tokens})})
            # the keys of the identifiers alone: what the record's keys lack
            identifier_keys = keys_of(None, False, 0, 0, 0, None, None, None, None, tokens)
            keys.extend({'sid': rid, 'k': k} for k in sorted(identifier_keys) if (rid, k) not in held)
        if updates:
            connection.execute(update, updates)
        if keys:
            connection.execute(_KEYS.insert().values(source_record_id=sa.bindparam('sid'), key=sa.bindparam('k')),
                               keys)


def downgrade() -> None:
    # the identifiers are what the code before 0019 writes too (for records written since): nothing to undo
    pass
