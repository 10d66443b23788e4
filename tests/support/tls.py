"""A test certificate authority and a server certificate made in the test (trustme,
on the cryptography package): nothing is read from or trusted on the machine."""

from __future__ import annotations

import ssl
from pathlib import Path

import trustme


def issue(directory: Path, *names: str) -> tuple[Path, Path, ssl.SSLContext]:
    """(certificate file, key file, a client context trusting only this CA)."""
    ca = trustme.CA()
    cert = ca.issue_cert(*(names or ("mx.example.test", "127.0.0.1")))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return cert_path, key_path, context
