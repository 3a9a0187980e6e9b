"""HL7 v2: the one reader of ER7 text, its datatypes and shared tables, and the acknowledgements.

Every adapter (ADT in ``mpi``, ORU in ``imaging``, ORM/OMI in ``dedupe``, the HL7 service in ``api``) takes the
:class:`Message` that :func:`parse_message` returns: a message is read once. What a message *means* (a source
record, a study, an order) is decided by the adapters; what its text says, here.

- :mod:`~priorscan.hl7v2.charset`: a message's bytes as text, in the set MSH-18 names (:func:`decode_message`);
- :mod:`~priorscan.hl7v2.delimiters`: MSH-1/MSH-2 and escape sequences, both ways;
- :mod:`~priorscan.hl7v2.er7`: segments, fields, repetitions, components (:func:`parse_message`);
- :mod:`~priorscan.hl7v2.header`: the MSH (:func:`read_header` for a message that cannot be read whole);
- :mod:`~priorscan.hl7v2.datatypes`: CX, HD, XPN, XAD, XTN; TS/DTM with the sender's time zone;
- :mod:`~priorscan.hl7v2.tables`: sex, NHS number identifiers, diagnostic service sections, error codes;
- :mod:`~priorscan.hl7v2.ack`: ACKs in the message's encoding and version, original and enhanced mode;
- :mod:`~priorscan.hl7v2.batch`: batches (FHS/BHS ... BTS/FTS) cut into messages, and the batch of their ACKs;
- :mod:`~priorscan.hl7v2.errors`: :class:`MessageError` and its :class:`ErrorLocation`.

No third-party HL7 library is needed at run time: hl7apy reads the same text independently in the tests, as a
check on this reader.
"""

from priorscan.hl7v2.ack import (
    ACCEPTED,
    COMMIT_ACCEPT,
    COMMIT_ERROR,
    COMMIT_REJECT,
    ERROR,
    REJECTED,
    AckError,
    acknowledgements,
    build_ack,
)
from priorscan.hl7v2.batch import Batch, batch_acknowledgement, is_batch, split_batch
from priorscan.hl7v2.charset import CHARSET_ERROR, DecodedMessage, decode_message
from priorscan.hl7v2.datatypes import (
    CX,
    HD,
    LOCAL_ZONE,
    XAD,
    XPN,
    XTN,
    Timestamp,
    format_timestamp,
    parse_date,
    parse_timestamp,
)
from priorscan.hl7v2.delimiters import NULL, STANDARD, Delimiters
from priorscan.hl7v2.er7 import (
    MAX_REPETITIONS,
    Composite,
    Message,
    Segment,
    content_digest,
    has_control_characters,
    normalise_segments,
    parse_message,
)
from priorscan.hl7v2.errors import ErrorLocation, MessageError
from priorscan.hl7v2.header import MessageHeader, read_header
from priorscan.hl7v2.tables import (
    LOCAL_PATIENT_TYPES,
    NHS_NUMBER_AUTHORITIES,
    NHS_NUMBER_TYPES,
    NOT_PATIENT_TYPES,
    administrative_sex,
    is_nhs_number_authority,
    service_section_modality,
)


def escape(value: str, delimiters: Delimiters = STANDARD) -> str:
    """``value`` as HL7 text with ``delimiters`` (the standard ones by default): see :meth:`Delimiters.escape_text`."""
    return delimiters.escape_text(value)


__all__ = [
    "ACCEPTED", "CHARSET_ERROR", "COMMIT_ACCEPT", "COMMIT_ERROR", "COMMIT_REJECT", "CX", "ERROR", "HD",
    "LOCAL_PATIENT_TYPES", "LOCAL_ZONE", "MAX_REPETITIONS", "NHS_NUMBER_AUTHORITIES", "NHS_NUMBER_TYPES",
    "NOT_PATIENT_TYPES", "NULL", "REJECTED", "STANDARD", "XAD", "XPN", "XTN", "AckError", "Composite",
    "DecodedMessage", "Delimiters", "ErrorLocation", "Message", "MessageError", "MessageHeader", "Segment", "Timestamp",
    "Batch", "acknowledgements", "administrative_sex", "batch_acknowledgement", "build_ack", "content_digest",
    "decode_message", "escape", "format_timestamp", "has_control_characters", "is_batch", "is_nhs_number_authority",
    "normalise_segments", "parse_date", "parse_message", "parse_timestamp", "read_header", "service_section_modality",
    "split_batch",
]
