"""A private certificate authority for the cluster recipe (and the tests): a CA, a server
certificate for the database hosts, and a client certificate for Garrison. Production
brings its own certificates; the file names are the same."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from garrison.ops.cluster.recipes import write_private


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _issue(
    subject: str,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    hosts: list[str],
    usage: x509.ObjectIdentifier | None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
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
    if hosts:
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def generate(directory: Path, hosts: list[str], *, name: str = "garrison-db") -> TlsFiles:
    """A new CA in ``directory`` with a server certificate for ``hosts`` and a client one."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue(f"{name} CA", _name(f"{name} CA"), ca_key, ca_key, ca=True, hosts=[], usage=None)
    files = TlsFiles(
        ca=directory / "ca.pem",
        server_cert=directory / "server-cert.pem",
        server_key=directory / "server-key.pem",
        client_cert=directory / "client-cert.pem",
        client_key=directory / "client-key.pem",
    )
    files.ca.write_text(ca.public_bytes(serialization.Encoding.PEM).decode())
    for cert_path, key_path, usage, subject in (
        (files.server_cert, files.server_key, ExtendedKeyUsageOID.SERVER_AUTH, hosts[0]),
        (files.client_cert, files.client_key, ExtendedKeyUsageOID.CLIENT_AUTH, "garrison"),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(
            subject,
            ca.subject,
            ca_key,
            key,
            ca=False,
            hosts=hosts if usage == ExtendedKeyUsageOID.SERVER_AUTH else [],
            usage=usage,
        )
        cert_path.write_text(cert.public_bytes(serialization.Encoding.PEM).decode())
        write_private(key_path, _key_pem(key))
    return files
