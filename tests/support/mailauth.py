"""Keys, DKIM/ARC signing and messages for the authentication tests.

Keys are generated in the tests (RSA with `cryptography`, Ed25519 with PyNaCl)
and published in the loopback DNS server as a real signer would publish them.
"""

from __future__ import annotations

import base64
import datetime
import secrets
from dataclasses import dataclass
from functools import cache

import dkim
import nacl.signing
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.model import Envelope, MessageContext


@dataclass(frozen=True)
class DkimKey:
    algorithm: bytes  # b"rsa-sha256" | b"ed25519-sha256"
    private: bytes  # what dkimpy's sign() takes
    record: str  # the TXT record to publish at <selector>._domainkey.<domain>


@cache
def rsa_key(bits: int = 2048) -> DkimKey:
    if bits < 1024:  # `cryptography` refuses to generate weak keys, but loads them
        key = _weak_rsa(bits)
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = "v=DKIM1; k=rsa; p=" + base64.b64encode(public).decode()
    return DkimKey(b"rsa-sha256", private, record)


def _probable_prime(bits: int) -> int:
    while True:
        n = secrets.randbits(bits) | (1 << (bits - 1)) | 1
        if all(pow(a, n - 1, n) == 1 for a in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)):
            return n


def _weak_rsa(bits: int) -> rsa.RSAPrivateKey:
    """An RSA key too short for real use, to test that verifiers refuse it."""
    e = 65537
    while True:
        p, q = _probable_prime(bits // 2), _probable_prime(bits // 2)
        phi = (p - 1) * (q - 1)
        if p != q and phi % e:
            break
    d = pow(e, -1, phi)
    numbers = rsa.RSAPrivateNumbers(
        p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), rsa.RSAPublicNumbers(e, p * q)
    )
    return numbers.private_key()


def with_algorithm(key: DkimKey, algorithm: bytes) -> DkimKey:
    return DkimKey(algorithm, key.private, key.record)


@cache
def ed25519_key() -> DkimKey:
    key = nacl.signing.SigningKey.generate()
    private = base64.b64encode(bytes(key))
    record = "v=DKIM1; k=ed25519; p=" + base64.b64encode(bytes(key.verify_key)).decode()
    return DkimKey(b"ed25519-sha256", private, record)


def publish(zone, selector: str, domain: str, key: DkimKey) -> None:
    zone.add(f"{selector}._domainkey.{domain}", "TXT", key.record)


def message(
    from_header: str | None = "Alice <alice@example.test>",
    body: str = "Hello Bob,\r\n\r\nthe report is attached.\r\n",
    extra: str = "",
) -> bytes:
    head = ""
    if from_header is not None:
        head += f"From: {from_header}\r\n"
    head += "To: Bob <bob@local.test>\r\nSubject: quarterly report\r\n"
    head += "Date: Mon, 02 Nov 2026 10:00:00 +0000\r\nMessage-ID: <report-1@example.test>\r\n"
    head += extra
    return (head + "\r\n" + body).encode("utf-8")


def sign(raw: bytes, selector: str, domain: str, key: DkimKey, **kwargs) -> bytes:
    """The message with a DKIM-Signature added on top."""
    header = dkim.sign(
        raw,
        selector.encode(),
        domain.encode(),
        key.private,
        signature_algorithm=key.algorithm,
        include_headers=kwargs.pop("include_headers", [b"from", b"to", b"subject", b"date"]),
        **kwargs,
    )
    return header + raw


def arc_seal(raw: bytes, selector: str, domain: str, key: DkimKey, srv_id: str) -> bytes:
    """The message with the next ARC set added (the sealer's own A-R must be on top)."""
    headers = dkim.arc_sign(raw, selector.encode(), domain.encode(), key.private, srv_id.encode())
    return b"".join(headers) + raw


def context(
    raw: bytes,
    mail_from: str = "alice@example.test",
    client_ip: str = "192.0.2.10",
    helo: str = "mail.example.test",
    rcpts: tuple[str, ...] = ("bob@local.test",),
) -> MessageContext:
    env = Envelope(mail_from=mail_from, rcpt_tos=rcpts, client_ip=client_ip, helo=helo)
    return MessageContext("TESTQ1", env, raw, datetime.datetime.now(datetime.UTC))
