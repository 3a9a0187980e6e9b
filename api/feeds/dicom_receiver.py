"""DICOM objects pushed to priorscan, whichever way they came (C-STORE in :mod:`api.feeds.dicom_scp`, STOW-RS in
:mod:`api.http.routers.dicomweb`): read the header without pixel data, index it, and keep what fails as a dead letter.

Objects are committed before their status is returned, so a success status always means the object is in the store.
Objects that arrive together (one STOW-RS request; C-STORE requests of concurrent associations, gathered by
:class:`GroupWriter`) are applied in one transaction, each alone again if that one fails. A failure is kept in
``dead_letter`` with its reason:

- an object that cannot be read as DICOM: its bytes (base64, content type ``dicom``; at most
  :data:`MAX_DEAD_LETTER_BYTES`);
- an object read but refused by the index (no Study Instance UID, the store busy ...): its header as DICOM JSON
  (content type ``dicom-json``, which ``priorscan deadletters replay`` can apply again).

A C-STORE request carries its dataset without file meta information: the SCP hands it on as it came
(:class:`Pushed`, the dataset's bytes and what the command and presentation context say of it) and its header is read
from those bytes in the presentation context's transfer syntax, in the writer (a process of its own:
:class:`api.feeds.writer_processes.DicomWriterProcesses`), so that the SCP's process spends its time on the
network only; a Part 10 object is made of it only for a dead letter that keeps the bytes.

The status of each object is a DICOM status (PS3.4 C-STORE, the FailureReason of PS3.18 STOW-RS): 0x0000 success,
0xA700 out of resources (the store was busy: the sender may try again), 0xC000 cannot understand (unreadable, or
refused by the index), 0x0110 processing failure (an internal error).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import queue
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    DeflatedExplicitVRLittleEndian,
    PrivateTransferSyntaxes,
)

from api.feeds.group_commit import next_group
from imaging import (
    READ_ERRORS,
    before_pixels,
    identified,
    inflate,
    ingest_dicom_datasets,
    raw_text,
    read_header_bytes,
    why_unreadable,
)
from priorscan.audit import Agent
from priorscan.errors import StorageError
from priorscan.outcome import ItemOutcome
from priorscan.tables import DeadLetter
from priorscan.unit_of_work import unit_of_work

if TYPE_CHECKING:
    from api.context import AppContext
    from api.feeds.writer_processes import DicomWriterProcesses

log = logging.getLogger(__name__)

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000
PROCESSING_FAILURE = 0x0110
#: An unreadable object's bytes are kept up to this size (its header is what matters, and it comes first).
MAX_DEAD_LETTER_BYTES = 4 * 1024 * 1024
#: Objects applied in one transaction at most (pushed over concurrent associations, or one STOW-RS request).
MAX_GROUP = 64
_READ_ERRORS = READ_ERRORS  # what a corrupt or truncated object raises (imaging.READ_ERRORS)


@dataclass
class Received:
    """What became of one pushed object."""

    status: int
    outcome: ItemOutcome
    sop_class_uid: str | None = None
    sop_instance_uid: str | None = None

    @property
    def stored(self) -> bool:
        return self.status == SUCCESS


@dataclass(frozen=True)
class Pushed:
    """A dataset as a C-STORE request carries it: its encoded bytes (no file meta information), its transfer
    syntax (the presentation context's) and its SOP Class and Instance UIDs (the request's Affected SOP UIDs)."""

    dataset: bytes
    transfer_syntax: str
    sop_class_uid: str
    sop_instance_uid: str

    def part10(self) -> bytes:
        """The object as a DICOM Part 10 file: preamble, file meta information, then the dataset as received."""
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = UID(self.sop_class_uid)
        meta.MediaStorageSOPInstanceUID = UID(self.sop_instance_uid)
        meta.TransferSyntaxUID = UID(self.transfer_syntax)
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        out = DicomBytesIO()
        out.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(out, meta, enforce_standard=True)
        return out.getvalue() + self.dataset

    def header(self) -> Dataset:
        """The dataset's header, without pixel data, read from its bytes in the transfer syntax it came in (no Part 10
        object is made for it: file meta information would be written only to be read again).

        Raises
        ------
        pydicom.errors.InvalidDicomError
            When no SOP Class and no Study Instance UID can be read.
        """
        syntax = UID(self.transfer_syntax)
        data = self.dataset
        if syntax == DeflatedExplicitVRLittleEndian:
            data = inflate(data)  # PS3.5 A.5: the whole dataset deflated (refused past imaging.MAX_INFLATED_BYTES)
        if syntax in PrivateTransferSyntaxes:
            syntax = PrivateTransferSyntaxes[PrivateTransferSyntaxes.index(syntax)]  # carries its encoding
        if syntax.is_transfer_syntax:
            implicit, little = syntax.is_implicit_VR, syntax.is_little_endian
        else:  # an unknown syntax: any other is explicit VR little endian (PS3.5 A.4), as pydicom reads a file
            implicit, little = False, True
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = read_dataset(io.BytesIO(data), implicit, little, stop_when=before_pixels)
        return identified(ds)


def read_header(data: bytes) -> Dataset:
    """The header of a DICOM Part 10 object (with or without preamble), without pixel data
    (:func:`imaging.read_header_bytes`: within its bounds).

    Raises
    ------
    pydicom.errors.InvalidDicomError
        When ``data`` holds no DICOM object (no SOP Class and no Study Instance UID can be read), or one that
        inflates past :data:`imaging.MAX_INFLATED_BYTES`.
    """
    return read_header_bytes(data)


def dead_letter(context: AppContext, *, channel: str, source: str, content_type: str, code: str, reason: str,
                raw: str) -> bool:
    """Keep one failed object; False (and logged) when the store cannot take even that."""
    try:
        with unit_of_work(context.sessions, write=True) as session:
            session.add(DeadLetter(channel=channel[:40], content_type=content_type, source=source[:500],
                                   error_code=code[:60], reason=reason, raw=raw))
        return True
    except Exception as exc:  # the sender is told the object failed; it may send it again
        log.error("could not dead-letter a DICOM object from %s (%s)", source, type(exc).__name__)
        return False


def _header_json(ds: Dataset) -> str | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds.remove_private_tags()  # vendors' private blocks: never read here, often the bulk of a header
            return json.dumps(ds.to_json_dict(bulk_data_threshold=1 << 20))
    except Exception:  # a value pydicom cannot render: the caller keeps the bytes instead
        return None


def _status_of(outcome: ItemOutcome) -> int:
    if outcome.error_code == "busy":
        return OUT_OF_RESOURCES
    if outcome.error_code == "internal":
        return PROCESSING_FAILURE
    return CANNOT_UNDERSTAND


def receive(context: AppContext, data: bytes, *, channel: str, source: str, agent: Agent,
            source_trust: str | None = None) -> Received:
    """Index one pushed DICOM object (Part 10 bytes) and return its DICOM status; committed before returning.

    Parameters
    ----------
    context
        The opened store and trusts.
    data
        The object as received (with its file meta information).
    channel
        ``dicom`` (C-STORE) or ``stow-rs``, named on dead letters.
    source
        Who sent it (calling AE title and address, or the API client), never patient data.
    agent
        Who is audited as indexing it.
    source_trust
        The sending trust (ODS code or alias), qualifying a patient ID sent without an issuer.
    """
    return receive_many(context, [data], channel=channel, source=source, agent=agent, source_trust=source_trust)[0]


def receive_many(context: AppContext, pushed: list[bytes] | list[bytes | Pushed], *, channel: str, source: str,
                 agent: Agent, source_trust: str | None = None) -> list[Received]:
    """Index several pushed objects from one sender in one unit of work (group commit; each alone if that fails),
    as :func:`receive` does one; the statuses in the order given, all committed before returning."""
    results: list[Received | None] = [None] * len(pushed)
    readable: list[tuple[int, Dataset]] = []
    for position, item in enumerate(pushed):
        try:
            readable.append((position, item.header() if isinstance(item, Pushed) else read_header(item)))
        except _READ_ERRORS as exc:
            reason = f"not a readable DICOM object ({why_unreadable(exc)})"
            dead_letter(context, channel=channel, source=source, content_type="dicom", code="dicom.corrupt",
                        reason=reason, raw=_kept_bytes(item))
            results[position] = Received(CANNOT_UNDERSTAND, ItemOutcome.rejected("DICOM", reason, "dicom.corrupt"))
    if readable:
        try:
            outcomes = ingest_dicom_datasets(context.sessions, context.trusts,
                                             [(ds, source_trust) for _, ds in readable], agent=agent)
        except Exception as exc:  # a fault of ours: keep the objects, name the fault's type only
            log.error("indexing pushed DICOM objects failed (%s)", type(exc).__name__)
            log.debug("indexing failure", exc_info=exc)
            outcomes = [ItemOutcome.rejected("DICOM", f"internal error while indexing ({type(exc).__name__})",
                                             "internal") for _ in readable]
        for (position, ds), outcome in zip(readable, outcomes, strict=True):
            results[position] = _settle(context, ds, pushed[position], outcome, channel=channel, source=source)
    return [r for r in results if r is not None]


def _kept_bytes(item: bytes | Pushed) -> str:
    """What a dead letter keeps of an object it cannot keep as a header: its Part 10 bytes (base64, at most
    :data:`MAX_DEAD_LETTER_BYTES`)."""
    data = item.part10() if isinstance(item, Pushed) else item
    return base64.b64encode(data[:MAX_DEAD_LETTER_BYTES]).decode("ascii")


def _settle(context: AppContext, ds: Dataset, item: bytes | Pushed, outcome: ItemOutcome, *, channel: str,
            source: str) -> Received:
    """The status of one indexed object; a failure is dead-lettered (its header, else its bytes)."""
    sop_class, sop_uid = raw_text(ds, (0x0008, 0x0016)), raw_text(ds, (0x0008, 0x0018))
    if outcome.accepted:
        return Received(SUCCESS, outcome, sop_class, sop_uid)
    header = _header_json(ds)
    if header is not None:
        dead_letter(context, channel=channel, source=source, content_type="dicom-json",
                    code=outcome.error_code or "dicom", reason=outcome.reason or "rejected", raw=header)
    else:
        dead_letter(context, channel=channel, source=source, content_type="dicom", code=outcome.error_code or "dicom",
                    reason=outcome.reason or "rejected", raw=_kept_bytes(item))
    return Received(_status_of(outcome), outcome, sop_class, sop_uid)


@dataclass(frozen=True)
class Sender:
    """Who pushed an object and how: what :func:`receive_many` is told of a sender's objects (they share it)."""

    channel: str
    source: str
    agent: Agent
    source_trust: str | None = None


def receive_group(context: AppContext, group: Sequence[tuple[Sender, bytes | Pushed]]) -> list[Received]:
    """Objects gathered from concurrent senders: each sender's objects indexed with one commit
    (:func:`receive_many`); their statuses in the order given, every one after its commit. Never raises: a store out of
    reach answers 0xA700 (send again), any other fault 0x0110."""
    by_sender: dict[Sender, list[int]] = {}
    for position, (sender, _) in enumerate(group):
        by_sender.setdefault(sender, []).append(position)
    results: list[Received | None] = [None] * len(group)
    for sender, positions in by_sender.items():
        try:
            received = receive_many(context, [group[p][1] for p in positions], channel=sender.channel,
                                    source=sender.source, agent=sender.agent, source_trust=sender.source_trust)
        except StorageError as exc:  # the store is out of reach: the sender sends again
            log.error("could not apply %d pushed DICOM object(s) (%s)", len(positions), exc.code)
            received = [busy() for _ in positions]
        except Exception as exc:  # never leave a sender waiting
            log.error("applying pushed DICOM objects failed (%s)", type(exc).__name__)
            received = [Received(PROCESSING_FAILURE, ItemOutcome.rejected("DICOM", "internal error", "internal"))
                        for _ in positions]
        for position, result in zip(positions, received, strict=True):
            results[position] = result
    return [r for r in results if r is not None]


def busy() -> Received:
    """The status of an object the store could not take now (0xA700, out of resources: the sender sends it again)."""
    return Received(OUT_OF_RESOURCES, ItemOutcome.rejected("DICOM", "the store is busy", "busy"))


class GroupWriter:
    """Applies objects pushed over concurrent associations in groups (one transaction per group), so that the
    store's per-transaction cost is shared; each caller still gets its own status only after the commit.

    With ``processes`` (:class:`api.feeds.writer_processes.DicomWriterProcesses`) each object goes straight to a writer
    process, which gathers its groups itself from what waits in its pipe; without, one thread of this process gathers
    the groups and applies them.

    :meth:`submit` blocks its caller (an association's thread) until its object is committed or refused.
    """

    def __init__(self, context: AppContext, max_group: int = MAX_GROUP,
                 processes: DicomWriterProcesses | None = None) -> None:
        self.context = context
        self.max_group = max_group
        self.processes = processes
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._threads = [] if processes is not None else [
            threading.Thread(target=self._run, name="dicom-group-writer", daemon=True)]
        for thread in self._threads:
            thread.start()

    def submit(self, data: bytes | Pushed, *, channel: str, source: str, agent: Agent,
               source_trust: str | None = None) -> Received:
        sender = Sender(channel, source, agent, source_trust)
        if self.processes is not None:
            return self.processes.receive(sender, data)
        pending = _Pending(sender, data)
        self._queue.put(pending)
        pending.done.wait()
        assert pending.result is not None
        return pending.result

    def close(self) -> None:
        """Finish what was submitted, then stop the thread (or the writer processes)."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=60)
        if self.processes is not None:
            self.processes.stop()

    def _run(self) -> None:
        while True:
            group, stop = next_group(self._queue, self.max_group)
            if group:
                results = receive_group(self.context, [(item.sender, item.data) for item in group])
                for item, result in zip(group, results, strict=True):
                    item.result = result
                    item.done.set()
            if stop:
                return


@dataclass
class _Pending:
    sender: Sender
    data: bytes | Pushed
    result: Received | None = None
    done: threading.Event = field(default_factory=threading.Event)
