"""The test/demo PKI: what a device and the server need, private keys 0600."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from daemon.sealing import PHOTO_INFO, open_sealed, public_from_b64, seal
from hil import pki as pkimod


def test_the_pki_names_loopback_chains_to_its_ca_and_keeps_keys_private(tmp_path: Path) -> None:
    pki = pkimod.create(tmp_path / "pki")
    for private in (pki.ca_key, pki.server_key, pki.seal_key):
        assert private.stat().st_mode & 0o777 == 0o600, private.name
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(pki.server_cert.read_bytes())
    server.verify_directly_issued_by(ca)
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(sans.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    cert_path, key_path = pkimod.issue_client_cert(pki, "kiosk-0042", tmp_path / "dev")
    client = x509.load_pem_x509_certificate(cert_path.read_bytes())
    client.verify_directly_issued_by(ca)
    assert client.subject.rfc4514_string() == "CN=kiosk-0042"
    assert isinstance(client.public_key(), ec.EllipticCurvePublicKey)
    assert key_path.stat().st_mode & 0o777 == 0o600
    # what a device seals to the published public key, the private key opens
    blob = seal(b"jpeg", public_from_b64(pki.seal_public_b64()), PHOTO_INFO)
    assert open_sealed(blob, pki.seal_key.read_bytes()) == b"jpeg"
