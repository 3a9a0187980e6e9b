"""Real X.509 material for the MLLP TLS tests, made in the test with ``cryptography``, and trusts files naming
HL7 senders."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from priorscan.settings import PACKAGE_DATA

_NOT_BEFORE = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
_NOT_AFTER = dt.datetime(2099, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, written as PEM files."""

    cert: Path
    key: Path


class Authority:
    """A certificate authority that issues server and client certificates into ``folder``."""

    def __init__(self, folder: Path, name: str) -> None:
        self.folder, self.name = folder, name
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                            .not_valid_before(_NOT_BEFORE).not_valid_after(_NOT_AFTER)
                            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                            .sign(self.key, hashes.SHA256()))
        self.cert = folder / f"{name}-ca.pem"
        self.cert.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def issue(self, common_name: str, *, server: bool = False) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = [x509.DNSName(common_name)]
        if server:
            names += [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        certificate = (x509.CertificateBuilder()
                       .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
                       .issuer_name(self.certificate.subject).public_key(key.public_key())
                       .serial_number(x509.random_serial_number())
                       .not_valid_before(_NOT_BEFORE).not_valid_after(_NOT_AFTER)
                       .add_extension(x509.SubjectAlternativeName(names), critical=False)
                       .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                       .sign(self.key, hashes.SHA256()))
        out = Issued(self.folder / f"{self.name}-{common_name}.pem", self.folder / f"{self.name}-{common_name}.key")
        out.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        out.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
        return out


def client_context(authority: Authority, client: Issued | None) -> ssl.SSLContext:
    """A sender's TLS context: trusts the listener's authority, presents ``client`` when given."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(authority.cert))
    if client is not None:
        context.load_cert_chain(client.cert, client.key)
    return context


def send_tls(port: int, context: ssl.SSLContext, message: str, timeout: float = 10.0) -> str:
    """One message over MLLP in TLS; its ACK text (raises ``ssl.SSLError``/``OSError`` when the listener refuses)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as sock:
        sock.sendall(b"\x0b" + message.encode() + b"\x1c\x0d")
        data = b""
        while not data.endswith(b"\x1c\x0d"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.decode("utf-8")


def trusts_with_senders(folder: Path, senders: dict[str, list[dict[str, Any]]]) -> Path:
    """The packaged trusts file with ``[[trust.hl7_sender]]`` tables added to the trusts named by ODS code."""
    text = (PACKAGE_DATA / "trusts.toml").read_text(encoding="utf-8")
    blocks = text.split("[[trust]]")
    out = [blocks[0]]
    for block in blocks[1:]:
        ods = block.split('ods = "', 1)[1].split('"', 1)[0]
        tables = "".join("\n[[trust.hl7_sender]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in s.items())
                         for s in senders.get(ods, []))
        out.append(block.rstrip("\n") + "\n" + tables + "\n")
    path = folder / "trusts.toml"
    path.write_text("[[trust]]".join(out), encoding="utf-8")
    return path
