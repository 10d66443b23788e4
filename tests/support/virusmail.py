"""A generator of virus mails and clean mails of the same shapes.

Payloads: the EICAR test file and every file of Debian's clamav-testfiles
(/usr/share/clamav-testfiles: clam.exe packed, archived, embedded in
documents and mailboxes). Each is sent in every shape below, under names with
the extensions users name in service agreements (.doc .xls .exe .dll .zip
.html ...), beside a clean attachment and a text body. The clean corpus uses
the same shapes with clean payloads (documents, archives, binaries, near-miss
text that resembles EICAR), so a false alarm on a shape shows up.

    python -m tests.support.virusmail --out DIR      # writes DIR/virus and DIR/clean

Deterministic: the same files come out on every run (a seed drives every
choice), so rates measured on it are comparable over time.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import io
import random
import sys
import urllib.parse
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from email.header import Header
from pathlib import Path

TESTFILES = Path("/usr/share/clamav-testfiles")
# EICAR, kept base64 so that this source file is not itself a test virus
EICAR = base64.b64decode(
    "WDVPIVAlQEFQWzRcUFpYNTQoUF4pN0NDKTd9JEVJQ0FSLVNUQU5EQVJELUFOVElWSVJVUy1URVNULUZJTEUhJEgrSCo="
)
EXTENSIONS = (
    ".doc", ".xls", ".exe", ".dll", ".zip", ".html", ".pdf", ".scr",
    ".js", ".rtf", ".ppt", ".com", ".docx", ".bin", ".pif", ".xlsm",
)  # fmt: skip
WRONG_TYPES = ("image/jpeg", "text/plain", "application/pdf", "audio/mpeg", "text/html")
TYPES = {
    ".doc": "application/msword",
    ".xls": "application/vnd.ms-excel",
    ".exe": "application/x-msdownload",
    ".dll": "application/x-msdownload",
    ".zip": "application/zip",
    ".html": "text/html",
    ".pdf": "application/pdf",
    ".rtf": "application/rtf",
    ".ppt": "application/vnd.ms-powerpoint",
    ".js": "application/javascript",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}
CJK_NAME = "季度报告"  # "quarterly report": GB2312-encodable


@dataclass(frozen=True)
class Payload:
    name: str
    data: bytes


def virus_payloads(testfiles: Path = TESTFILES) -> list[Payload]:
    files = sorted(p for p in testfiles.iterdir() if p.is_file()) if testfiles.is_dir() else []
    return [Payload("eicar.com", EICAR)] + [Payload(p.name, p.read_bytes()) for p in files]


def clean_payloads(count: int, rng: random.Random) -> list[Payload]:
    """Clean files of the kinds that travel as attachments, and near misses."""
    words = [
        "quarterly",
        "revenue",
        "forecast",
        "meeting",
        "agenda",
        "invoice",
        "shipment",
        "contract",
        "review",
        "budget",
        "schedule",
        "minutes",
        "draft",
        "approval",
        "supplier",
        "report",
        "summary",
    ]
    makers: list[Callable[[int], Payload]] = [
        lambda i: Payload(f"report{i}.txt", " ".join(rng.choices(words, k=400)).encode()),
        lambda i: Payload(f"data{i}.bin", rng.randbytes(rng.randint(200, 40_000))),
        lambda i: Payload(f"archive{i}.zip", _zip({f"notes{i}.txt": rng.randbytes(3000)})),
        lambda i: Payload(
            f"page{i}.html",
            f"<html><body><h1>Minutes {i}</h1><p>{' '.join(rng.choices(words, k=80))}</p>"
            "</body></html>".encode(),
        ),
        lambda i: Payload(
            f"doc{i}.pdf",
            b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n" + rng.randbytes(2000) + b"\n%%EOF\n",
        ),
        # near miss: EICAR with one character changed is not the test file
        lambda i: Payload(f"almost{i}.com", EICAR.replace(b"EICAR", b"EIKAR")),
        lambda i: Payload(f"prog{i}.exe", b"MZ" + rng.randbytes(rng.randint(500, 20_000))),
    ]
    return [makers[i % len(makers)](i) for i in range(count)]


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0)), data)
    return out.getvalue()


def _b64(data: bytes) -> str:
    return base64.encodebytes(data).decode("ascii").replace("\n", "\r\n")


def _qp(data: bytes) -> str:
    # istext=False: line breaks in binary data are encoded too, so they survive
    # (b2a_qp ends soft breaks with CRLF when the data holds one: no bare CR left behind)
    encoded = binascii.b2a_qp(data, quotetabs=True, istext=False).decode("ascii")
    return encoded.replace("\r\n", "\n").replace("\n", "\r\n")


def _uu(data: bytes, name: str) -> str:
    lines = [f"begin 644 {name}"]
    for i in range(0, len(data), 45):
        lines.append(binascii.b2a_uu(data[i : i + 45]).decode("ascii").rstrip("\n"))
    lines += ["`", "end"]
    return "\r\n".join(lines) + "\r\n"


def _headers(subject: str, ident: str, ctype: str) -> str:
    return (
        "From: Sender <sender@example.org>\r\n"
        "To: user@example.test\r\n"
        f"Subject: {subject}\r\n"
        "Date: Mon, 02 Nov 2026 10:00:00 +0000\r\n"
        f"Message-ID: <{ident}@virusmail.mailwarden.test>\r\n"
        "MIME-Version: 1.0\r\n"
        f"Content-Type: {ctype}\r\n"
    )


def _attachment(name: str, data: bytes, ctype: str | None = None, cte: str = "base64") -> str:
    """One attachment part (headers and encoded body); name may be pre-encoded."""
    ctype = ctype or TYPES.get(Path(name).suffix.lower(), "application/octet-stream")
    body = {"base64": _b64, "quoted-printable": _qp}[cte](data)
    return (
        f'Content-Type: {ctype}; name="{name}"\r\n'
        f'Content-Disposition: attachment; filename="{name}"\r\n'
        f"Content-Transfer-Encoding: {cte}\r\n\r\n{body}"
    )


def _text(body: str) -> str:
    return (
        'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: 7bit\r\n\r\n'
        + body
    )


def _multipart(boundary: str, parts: list[str], preamble: bool = True) -> str:
    out = "This is a multi-part message in MIME format.\r\n\r\n" if preamble else ""
    for part in parts:
        out += f"--{boundary}\r\n{part}\r\n"
    return out + f"--{boundary}--\r\n"


def _mixed(ident: str, subject: str, parts: list[str]) -> str:
    b = f"=_mixed_{ident}"
    return (
        _headers(subject, ident, f'multipart/mixed; boundary="{b}"') + "\r\n" + _multipart(b, parts)
    )


class Shapes:
    """Each shape: (payload bytes, attachment name, ident, extra clean file) -> message text."""

    def __init__(self, extra: Payload) -> None:
        self.extra = extra

    def _common(self) -> list[str]:
        return [_text("Hello,\r\n\r\nplease find the files attached.\r\n\r\nRegards\r\n")]

    def _extra(self) -> str:
        return _attachment(self.extra.name, self.extra.data)

    def base64(self, data: bytes, name: str, ident: str) -> str:
        parts = [*self._common(), _attachment(name, data), self._extra()]
        return _mixed(ident, f"Documents {ident}", parts)

    def quoted_printable(self, data: bytes, name: str, ident: str) -> str:
        parts = [*self._common(), _attachment(name, data, cte="quoted-printable"), self._extra()]
        return _mixed(ident, f"Documents {ident}", parts)

    def uuencode_part(self, data: bytes, name: str, ident: str) -> str:
        part = (
            f'Content-Type: application/octet-stream; name="{name}"\r\n'
            f'Content-Disposition: attachment; filename="{name}"\r\n'
            f"Content-Transfer-Encoding: x-uuencode\r\n\r\n{_uu(data, name)}"
        )
        return _mixed(ident, f"Documents {ident}", [*self._common(), part, self._extra()])

    def uuencode_inline(self, data: bytes, name: str, ident: str) -> str:
        body = "Here is the file you asked for:\r\n\r\n" + _uu(data, name) + "\r\nBye\r\n"
        return _headers(f"File {ident}", ident, 'text/plain; charset="us-ascii"') + "\r\n" + body

    def zip(self, data: bytes, name: str, ident: str) -> str:
        archive = _zip({name: data, "readme.txt": b"see attached\r\n"})
        parts = [*self._common(), _attachment(f"files-{ident}.zip", archive), self._extra()]
        return _mixed(ident, f"Archive {ident}", parts)

    def nested_zip(self, data: bytes, name: str, ident: str) -> str:
        inner = _zip({name: data})
        outer = _zip({"inner.zip": inner, "index.txt": b"inner archive\r\n"})
        parts = [*self._common(), _attachment(f"bundle-{ident}.zip", outer), self._extra()]
        return _mixed(ident, f"Bundle {ident}", parts)

    def _inner_message(self, data: bytes, name: str, ident: str) -> str:
        return _mixed(f"in{ident}", f"Original {ident}", [*self._common(), _attachment(name, data)])

    def forwarded(self, data: bytes, name: str, ident: str) -> str:
        inner = self._inner_message(data, name, ident)
        fwd = "Content-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n" + inner
        parts = [_text("Forwarding this message.\r\n"), fwd, self._extra()]
        return _mixed(ident, f"Fwd: Original {ident}", parts)

    def forwarded_twice(self, data: bytes, name: str, ident: str) -> str:
        inner = self._inner_message(data, name, ident)
        middle = _mixed(
            f"mid{ident}",
            f"Fwd: Original {ident}",
            [_text("fyi\r\n"), "Content-Type: message/rfc822\r\n\r\n" + inner],
        )
        fwd = "Content-Type: message/rfc822\r\n\r\n" + middle
        return _mixed(ident, f"Fwd: Fwd: Original {ident}", [_text("See below.\r\n"), fwd])

    def rfc2231_name(self, data: bytes, name: str, ident: str) -> str:
        utf8 = f"{CJK_NAME}-{name}"
        quoted = urllib.parse.quote(utf8.encode("utf-8"), safe="")
        part = (
            f"Content-Type: application/octet-stream; name*=utf-8''{quoted}\r\n"
            f"Content-Disposition: attachment; filename*=utf-8''{quoted}\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\n{_b64(data)}"
        )
        return _mixed(ident, f"Report {ident}", [*self._common(), part, self._extra()])

    def gb2312_name(self, data: bytes, name: str, ident: str) -> str:
        encoded = Header(f"{CJK_NAME}{Path(name).suffix}", "gb2312").encode()
        parts = [*self._common(), _attachment(encoded, data), self._extra()]
        subject = Header(f"{CJK_NAME} {ident}", "gb2312").encode()
        return _mixed(ident, subject, parts)

    def wrong_type(self, data: bytes, name: str, ident: str) -> str:
        ctype = WRONG_TYPES[sum(map(ord, ident)) % len(WRONG_TYPES)]
        parts = [*self._common(), _attachment(name, data, ctype=ctype), self._extra()]
        return _mixed(ident, f"Photo {ident}", parts)

    def single_part(self, data: bytes, name: str, ident: str) -> str:
        ctype = f'application/octet-stream; name="{name}"'
        head = _headers(f"File {ident}", ident, ctype)
        head += f'Content-Disposition: attachment; filename="{name}"\r\n'
        return head + "Content-Transfer-Encoding: base64\r\n\r\n" + _b64(data)

    def alternative(self, data: bytes, name: str, ident: str) -> str:
        alt_b = f"=_alt_{ident}"
        alt = f'Content-Type: multipart/alternative; boundary="{alt_b}"\r\n\r\n' + _multipart(
            alt_b,
            [
                _text("Plain text version.\r\n"),
                'Content-Type: text/html; charset="utf-8"\r\n\r\n<p>HTML version.</p>\r\n',
            ],
            preamble=False,
        )
        parts = [alt, self._extra(), _attachment(name, data)]
        return _mixed(ident, f"Newsletter {ident}", parts)


SHAPES = (
    "base64",
    "quoted_printable",
    "uuencode_part",
    "uuencode_inline",
    "zip",
    "nested_zip",
    "forwarded",
    "forwarded_twice",
    "rfc2231_name",
    "gb2312_name",
    "wrong_type",
    "single_part",
    "alternative",
)


def _stem(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name)


def generate(out: Path, variants: int = 2, seed: int = 20261102, testfiles: Path = TESTFILES):
    """Write out/virus/*.eml and out/clean/*.eml; returns (virus count, clean count)."""
    rng = random.Random(seed)
    viruses = virus_payloads(testfiles)
    cleans = clean_payloads(len(viruses), rng)
    extras = clean_payloads(7, random.Random(seed + 1))
    counts = {}
    for label, payloads in (("virus", viruses), ("clean", cleans)):
        folder = out / label
        folder.mkdir(parents=True, exist_ok=True)
        n = 0
        for p_index, payload in enumerate(payloads):
            for s_index, shape in enumerate(SHAPES):
                for variant in range(variants):
                    ext = EXTENSIONS[(p_index + s_index + variant * 7) % len(EXTENSIONS)]
                    name = f"{Path(payload.name).stem}{ext}"
                    ident = f"{label[0]}{p_index:02d}{s_index:02d}{variant}"
                    maker = getattr(Shapes(extras[(p_index + variant) % len(extras)]), shape)
                    text = maker(payload.data, name, ident)
                    path = folder / f"{shape}-{_stem(payload.name)}-{ext[1:]}-{variant}.eml"
                    path.write_bytes(text.encode("utf-8"))
                    n += 1
        counts[label] = n
    return counts["virus"], counts["clean"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, metavar="DIR")
    parser.add_argument("--variants", type=int, default=2, help="file names per payload/shape")
    parser.add_argument("--testfiles", type=Path, default=TESTFILES)
    args = parser.parse_args(argv)
    if not args.testfiles.is_dir():
        print(f"virusmail: {args.testfiles}: not found (Debian clamav-testfiles)", file=sys.stderr)
        return 2
    virus, clean = generate(args.out, args.variants, testfiles=args.testfiles)
    print(
        f"wrote {virus} virus mails to {args.out / 'virus'}, {clean} clean to {args.out / 'clean'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
