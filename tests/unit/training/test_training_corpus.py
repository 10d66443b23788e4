"""Corpus readers on small generated fixtures: tar.gz, plain dirs, Maildir, mbox."""

from __future__ import annotations

import io
import mailbox
import tarfile
from pathlib import Path

import pytest

from tests.support.mailgen import labelled
from training.corpus import HAM, SPAM, CorpusError, parse_spec, read_corpus

MESSAGES = labelled(3, 2)


def _write_tar(path: Path, messages=MESSAGES, extra: dict[str, bytes] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for index, (label, raw) in enumerate(messages):
            name = f"{'spam' if label else 'ham'}/{index:04d}.eml"
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _labels(spec: str) -> list[int]:
    return sorted(m.label for m in read_corpus(spec))


def test_tar_gz_yields_raw_bytes_with_labels_from_folders(tmp_path):
    path = _write_tar(tmp_path / "mini.tar.gz", extra={"README": b"not a message"})
    got = list(read_corpus(str(path)))
    assert sorted(m.label for m in got) == [HAM, HAM, HAM, SPAM, SPAM]
    assert {m.corpus for m in got} == {"mini"}
    assert sorted(m.raw for m in got) == sorted(raw for _, raw in MESSAGES)


def test_truncated_tar_is_one_clear_error(tmp_path):
    good = _write_tar(tmp_path / "good.tar.gz").read_bytes()
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(good[: len(good) // 2])
    with pytest.raises(CorpusError, match=r"bad\.tar\.gz: not a readable tar archive") as err:
        list(read_corpus(str(bad)))
    assert "\n" not in str(err.value)


def test_not_a_tar_and_missing_file(tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"hello")
    with pytest.raises(CorpusError, match="not a gzip, bzip2, xz or tar file"):
        list(read_corpus(str(junk)))
    with pytest.raises(CorpusError, match="corpus not found"):
        parse_spec(str(tmp_path / "absent.tar.gz"))


def test_tar_without_ham_or_spam_folders(tmp_path):
    path = _write_tar(tmp_path / "flat.tar.gz", messages=[], extra={"a.eml": b"Subject: x\n\n"})
    with pytest.raises(CorpusError, match="no ham/ or spam/ messages"):
        list(read_corpus(str(path)))


def test_plain_directories_with_ham_and_spam(tmp_path):
    for index, (label, raw) in enumerate(MESSAGES):
        folder = tmp_path / "corpus" / ("spam" if label else "ham") / "sub"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{index}.eml").write_bytes(raw)
    assert _labels(str(tmp_path / "corpus")) == [HAM, HAM, HAM, SPAM, SPAM]


def test_maildirs_and_mbox_inside_a_split_directory(tmp_path):
    root = tmp_path / "mixed"
    root.mkdir()
    ham = mailbox.Maildir(root / "ham", create=True)
    box = mailbox.mbox(root / "spam.mbox", create=True)
    for label, raw in MESSAGES:
        (box if label else ham).add(raw)
    box.flush()
    got = list(read_corpus(str(root)))
    assert sorted(m.label for m in got) == [HAM, HAM, HAM, SPAM, SPAM]
    # mbox keeps the message (its 'From ' envelope line is not part of the message)
    spam_subjects = {m.raw.split(b"Subject: ")[1].split(b"\n")[0] for m in got if m.label}
    want = {r.split(b"Subject: ")[1].split(b"\n")[0] for lbl, r in MESSAGES if lbl}
    assert spam_subjects == want


def test_labelled_mbox_and_maildir_given_as_ham_or_spam(tmp_path):
    box = mailbox.mbox(tmp_path / "reported.mbox", create=True)
    for _, raw in MESSAGES:
        box.add(raw)
    box.flush()
    assert _labels(f"spam={tmp_path / 'reported.mbox'}") == [SPAM] * 5
    maildir = mailbox.Maildir(tmp_path / "inbox", create=True)
    maildir.add(MESSAGES[0][1])
    assert _labels(f"ham={tmp_path / 'inbox'}") == [HAM]


def test_an_unlabelled_mbox_or_a_non_mbox_file_is_refused(tmp_path):
    box = mailbox.mbox(tmp_path / "x.mbox", create=True)
    box.add(MESSAGES[0][1])
    box.flush()
    with pytest.raises(CorpusError, match="give it as ham=PATH or spam=PATH"):
        list(read_corpus(str(tmp_path / "x.mbox")))
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    with pytest.raises(CorpusError, match="not an mbox file"):
        list(read_corpus(f"ham={text}"))


def test_directory_without_ham_or_spam(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="expected ham/ and spam/"):
        list(read_corpus(str(tmp_path / "empty")))
