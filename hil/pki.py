"""A small PKI for the reference API, the demo and the tests: a CA, a server certificate for
loopback, client certificates for devices (mTLS), and the API's X25519 photo-sealing key.

Private keys are written with mode 0600. Not for production: a real deployment uses the
probation service's own PKI.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from daemon.keys import write_private_file


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True)
class Pki:
    folder: Path

    @property
    def ca_cert(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.folder / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.folder / "server.key"

    @property
    def seal_key(self) -> Path:
        """The API's X25519 private key (raw 32 bytes) for opening sealed photos."""
        return self.folder / "seal.key"

    def seal_public_b64(self) -> str:
        import base64

        private = x25519.X25519PrivateKey.from_private_bytes(self.seal_key.read_bytes())
        raw = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return base64.b64encode(raw).decode()


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def create(
    folder: Path,
    *,
    now: dt.datetime | None = None,
    server_days: int = 30,
    server_not_before: dt.datetime | None = None,
) -> Pki:
    """Make a CA, a loopback server certificate and the API's sealing key in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    now = now or dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("probation-kiosk test CA"))
        .issuer_name(_name("probation-kiosk test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pki = Pki(folder)
    pki.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    write_private_file(pki.ca_key, _pem_key(ca_key))
    issue_server_cert(pki, now=now, days=server_days, not_before=server_not_before)
    write_private_file(pki.seal_key, x25519.X25519PrivateKey.generate().private_bytes_raw())
    return pki


def _load_ca(pki: Pki) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return ca, key


def issue_server_cert(
    pki: Pki, *, now: dt.datetime, days: int = 30, not_before: dt.datetime | None = None
) -> None:
    ca, ca_key = _load_ca(pki)
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or now - dt.timedelta(hours=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pki.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    write_private_file(pki.server_key, _pem_key(key))


def issue_client_cert(pki: Pki, device: str, out: Path) -> tuple[Path, Path]:
    """A client certificate for ``device`` (CN = device id); returns (cert, key) paths."""
    ca, ca_key = _load_ca(pki)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(device))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    out.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = out / f"{device}.pem", out / f"{device}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    write_private_file(key_path, _pem_key(key))
    return cert_path, key_path
