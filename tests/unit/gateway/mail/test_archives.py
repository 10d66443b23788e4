"""Archive bombs by what archives declare (pure; small limits keep the test fast)."""

from __future__ import annotations

import gzip
import io
import zipfile

from gateway.mail.archives import ArchiveLimits, archive_bomb

SMALL = ArchiveLimits(max_expanded=64 << 20, ratio_floor=1 << 20, max_nesting=3)


def zip_of(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buf.getvalue()


def test_a_high_ratio_zip_is_a_bomb():
    assert archive_bomb(zip_of([("z", bytes(4 << 20))]), SMALL).startswith("zip compression ratio")


def test_a_bomb_inside_a_zip_is_found():
    inner = zip_of([("z", bytes(4 << 20))])
    found = archive_bomb(zip_of([("innocent.dat", inner)]), SMALL)
    assert found and found.startswith("innocent.dat: zip compression ratio")


def test_nesting_is_bounded():
    data = b"x"
    for level in range(5):
        data = zip_of([(f"l{level}.zip", data)])
    assert "nested deeper than 3" in (archive_bomb(data, SMALL) or "")


def test_total_declared_size_is_bounded_whatever_the_ratio():
    limits = ArchiveLimits(max_expanded=1 << 20, ratio_floor=1 << 30)
    assert "more than" in (archive_bomb(zip_of([("a", bytes(2 << 20))]), limits) or "")


def test_gzip_trailer_is_read():
    found = archive_bomb(gzip.compress(bytes(4 << 20)), SMALL)
    assert found and found.startswith("gzip compression ratio")


def test_ordinary_archives_and_other_data_pass():
    assert archive_bomb(zip_of([("a.txt", b"hello world " * 1000)]), SMALL) is None
    assert archive_bomb(b"PK\x03\x04 but not really a zip", SMALL) is None
    assert archive_bomb(b"plain text", SMALL) is None
