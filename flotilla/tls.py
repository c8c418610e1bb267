"""Mutual TLS for every gRPC hop: a dev CA, per-service certificates, server and channel credentials.

The dev CA is created on first start of the local fleet (``flotilla certs``); in Kubernetes the chart or
cert-manager provides the same three files per service. Every certificate is valid both as a server and
as a client identity, with SANs for the service name, ``localhost`` and the loopback addresses.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from flotilla import tracing

SERVICES: tuple[str, ...] = ("gateway", "inference", "guard", "rag")
_VALIDITY = dt.timedelta(days=825)


@dataclass(frozen=True)
class TLSFiles:
    ca: Path
    cert: Path
    key: Path

    def read(self) -> tuple[bytes, bytes, bytes]:
        """(ca, cert chain, private key) as PEM bytes; a clear error if any is missing."""
        missing = [str(p) for p in (self.ca, self.cert, self.key) if not p.is_file()]
        if missing:
            raise FileNotFoundError(
                f"TLS material missing: {', '.join(missing)} (run `flotilla certs` for dev certificates)"
            )
        return self.ca.read_bytes(), self.cert.read_bytes(), self.key.read_bytes()


def server_credentials(files: TLSFiles) -> grpc.ServerCredentials:
    """Server side: present our cert, require and verify the client's against the CA."""
    ca, cert, key = files.read()
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)


def channel_credentials(files: TLSFiles) -> grpc.ChannelCredentials:
    """Client side: verify the server against the CA and present our own certificate."""
    ca, cert, key = files.read()
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


# Keepalives so idle connections between services survive proxies and notice dead peers.
CLIENT_CHANNEL_OPTIONS: list[tuple[str, object]] = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]


def secure_channel(
    target: str, files: TLSFiles, server_name: str | None = None, options: Sequence[tuple[str, object]] = ()
) -> grpc.aio.Channel:
    """An mTLS ``grpc.aio`` channel. ``server_name`` overrides the name checked against the server cert.

    When tracing is on (:mod:`flotilla.tracing`), the channel propagates the trace context of each call."""
    opts = list(options)
    if server_name:
        opts.append(("grpc.ssl_target_name_override", server_name))
    return grpc.aio.secure_channel(
        target, channel_credentials(files), options=opts, interceptors=tracing.client_interceptors() or None
    )


# ---------------------------------------------------------------------------------------------------
# Dev CA


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    path.chmod(0o600)


def create_ca(directory: Path, common_name: str = "Flotilla dev CA") -> tuple[Path, Path]:
    """A self-signed CA in ``directory`` (ca.pem, ca.key)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    ca_pem, ca_key = directory / "ca.pem", directory / "ca.key"
    ca_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(ca_key, key)
    return ca_pem, ca_key


def issue_cert(
    directory: Path, name: str, ca_pem: Path, ca_key: Path, extra_sans: Iterable[str] = ()
) -> TLSFiles:
    """A key and certificate for ``name`` signed by the CA, usable for server and client auth."""
    ca_cert = x509.load_pem_x509_certificate(ca_pem.read_bytes())
    signing_key = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
    key = _key()
    sans: list[x509.GeneralName] = []
    for value in (name, f"flotilla-{name}", "localhost", "127.0.0.1", "::1", *extra_sans):
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(value)))
        except ValueError:
            sans.append(x509.DNSName(value))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(signing_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    files = TLSFiles(ca=ca_pem, cert=directory / f"{name}.pem", key=directory / f"{name}.key")
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(files.key, key)
    return files


def ensure_dev_certs(directory: Path, services: Iterable[str] = SERVICES) -> dict[str, TLSFiles]:
    """Create the dev CA and one certificate per service unless they already exist."""
    ca_pem, ca_key = directory / "ca.pem", directory / "ca.key"
    if not (ca_pem.is_file() and ca_key.is_file()):
        create_ca(directory)
    out: dict[str, TLSFiles] = {}
    for name in services:
        files = TLSFiles(ca=ca_pem, cert=directory / f"{name}.pem", key=directory / f"{name}.key")
        if not (files.cert.is_file() and files.key.is_file()):
            files = issue_cert(directory, name, ca_pem, ca_key)
        out[name] = files
    return out
