"""The DICOM C-STORE SCP of ``priorscan serve --dicom-port PORT``: PACS and modalities push objects to it.

- AE title ``PRIORSCAN`` unless ``PRIORSCAN_DICOM_AE_TITLE`` says otherwise; associations addressed to another AE
  title are refused. Any calling AE title is accepted; one listed under a trust's ``dicom_ae_titles`` in
  ``trusts.toml`` names the sending trust, which qualifies patient IDs sent without an issuer.
- Presentation contexts: Verification (C-ECHO) and every storage SOP class pynetdicom knows (radiation dose SRs,
  Enhanced and Comprehensive SR, key object selection documents for IOCM, CT, MR, CR, DX, MG, US, XA, RF, NM, PET,
  secondary capture ...), in every transfer syntax, compressed ones included: only the header is read.
- Each object is indexed (header only) and committed before its status is sent, so a success status means the
  object is in the store; a failure is a dead letter and a failure status. Objects arriving together over
  concurrent associations share one transaction (:class:`api.feeds.dicom_receiver.GroupWriter`).

pynetdicom runs each association in a thread of its own, and its receiving side (PDUs, DIMSE, threads that poll) costs
more CPU than indexing does. So, as the MLLP listener does, the SCP hands each object to writer processes
(:class:`api.feeds.writer_processes.DicomWriterProcesses`; how many: :func:`api.feeds.mllp.writer_processes`, one
for SQLite on a machine of more than one core, up to one per core for PostgreSQL): this process takes the dataset's
bytes off the request as they came, without decoding them, and writes them into a writer process's pipe; the writer
process gathers what waits there, reads the headers, indexes the group and commits before the statuses are sent. With
no writer processes (one core, or ``processes=0``) a thread of this process applies the groups.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import TYPE_CHECKING, Any

from pydicom.uid import AllTransferSyntaxes
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from api.feeds.dicom_receiver import GroupWriter, Pushed
from priorscan.audit import Agent

if TYPE_CHECKING:
    from pynetdicom.transport import ThreadedAssociationServer

    from api.context import AppContext

log = logging.getLogger(__name__)
CHANNEL = "dicom"
CLOSE_TIMEOUT_S = 10.0
logging.getLogger("pynetdicom").setLevel(logging.WARNING)  # its INFO lines name every association and object


class _QuickAcks:
    """An association's socket that acknowledges what it receives at once (TCP_QUICKACK before every read).

    A sender writes a C-STORE request's command and its dataset as two segments; with Nagle's algorithm on (DCMTK's
    ``storescu`` and pynetdicom's SCU leave it on) the dataset waits until the command is acknowledged, and Linux
    delays that acknowledgement by some 40 ms: each association was held to about 22 objects a second whatever the
    work. Quick acknowledgements are not permanent in Linux, hence one before every read.
    """

    def __init__(self, sock: socket.socket, option: int) -> None:
        self._sock = sock
        self._option = option

    def recv(self, *args: Any) -> bytes:
        self._sock.setsockopt(socket.IPPROTO_TCP, self._option, 1)
        return self._sock.recv(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux


def _prompt_acknowledgements(event: Any) -> None:
    """On a new association: statuses sent at once (TCP_NODELAY) and what arrives acknowledged at once."""
    transport = getattr(event.assoc.dul, "socket", None)
    sock = getattr(transport, "socket", None)
    if not isinstance(sock, socket.socket):
        return
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if _QUICKACK is not None:
        transport.socket = _QuickAcks(sock, _QUICKACK)  # type: ignore[union-attr]


class StoreScp:
    """A running C-STORE SCP; :meth:`stop` closes it."""

    def __init__(self, context: AppContext, host: str, port: int, ae_title: str | None = None,
                 processes: int | None = None) -> None:
        self.context = context
        self.processes = processes
        self.ae_title = ae_title or context.settings.dicom_ae_title
        ae = AE(ae_title=self.ae_title)
        ae.require_called_aet = True
        ae.maximum_associations = 16
        ae.maximum_pdu_size = 0  # no limit: fewer PDUs for large objects
        ae.network_timeout = 60
        ae.add_supported_context(Verification)
        for context_ in AllStoragePresentationContexts:
            if context_.abstract_syntax is not None:
                ae.add_supported_context(context_.abstract_syntax, AllTransferSyntaxes)
        self._ae = ae
        self._server: ThreadedAssociationServer | None = None
        self._writer: GroupWriter | None = None
        self.host, self.port = host, port

    def start(self) -> StoreScp:
        """Listen (raises OSError when the port is taken)."""
        processes = self.processes
        if processes is None:
            from api.feeds.mllp import writer_processes  # the same rule as the MLLP listener's

            processes = writer_processes(self.context)
        pool = None
        if processes:
            from api.feeds.writer_processes import DicomWriterProcesses

            pool = DicomWriterProcesses(self.context.settings, processes)
        self._writer = GroupWriter(self.context, processes=pool)
        server = self._ae.start_server((self.host, self.port), block=False,
                                       evt_handlers=[(evt.EVT_CONN_OPEN, _prompt_acknowledgements),
                                                     (evt.EVT_C_STORE, self._on_store)])
        assert server is not None  # non-blocking: the server is returned
        self._server = server
        self.port = int(server.server_address[1])
        return self

    def stop(self, grace_s: float = CLOSE_TIMEOUT_S) -> None:
        """Stop accepting; let associations in progress end for ``grace_s`` seconds, then abort the rest (an object
        whose status was not sent is not acknowledged, so its sender keeps it)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        deadline = time.monotonic() + grace_s
        while server.active_associations and time.monotonic() < deadline:
            time.sleep(0.05)
        for association in server.active_associations:
            association.abort()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _on_store(self, event: Any) -> int:
        requestor = event.assoc.requestor
        calling = str(requestor.ae_title or "").strip()
        source = f"{calling or '-'}@{requestor.address}"
        trust = self.context.trusts.for_ae_title(calling)
        try:
            request = event.request
            data = Pushed(request.DataSet.getvalue(), str(event.context.transfer_syntax),
                          str(request.AffectedSOPClassUID or ""), str(request.AffectedSOPInstanceUID or ""))
        except Exception as exc:  # a malformed request: nothing to keep
            log.warning("C-STORE from %s: the object could not be taken from the request (%s)", source,
                        type(exc).__name__)
            return 0xC000
        writer = self._writer
        if writer is None:  # stopping
            return 0xA700
        received = writer.submit(data, channel=CHANNEL, source=source,
                                 agent=Agent("feed", f"dicom:{calling or 'unknown'}"[:200], requestor.address),
                                 source_trust=trust.ods if trust is not None else None)
        if not received.stored:
            log.info("C-STORE from %s refused with status 0x%04X (%s)", source, received.status,
                     received.outcome.reason)
        return received.status


def start_store_scp(context: AppContext, host: str, port: int, ae_title: str | None = None,
                    processes: int | None = None) -> StoreScp:
    """Start a C-STORE SCP on ``host:port`` (0 picks a free port; see ``StoreScp.port``), with ``processes`` writer
    processes (None: :func:`api.feeds.mllp.writer_processes`'s rule; 0: none)."""
    return StoreScp(context, host, port, ae_title, processes).start()
