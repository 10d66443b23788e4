"""Labelled mail readers: tar archives, Maildirs, mbox files and plain directories.

A corpus is named on the command line by one PATH:

- `name.tar.gz` / `.tgz` / `.tar` holding `ham/*` and `spam/*` members (the layout of
  ../shared/corpora); the label is the first `ham` or `spam` folder in a member's path;
- a directory with `ham` and `spam` children, each a plain directory of message files,
  a Maildir (cur/ new/) or an mbox file (`ham.mbox` / `spam.mbox` also accepted);
- `ham=PATH` or `spam=PATH`: one Maildir, mbox file or directory, all of one label
  (a mailbox says nothing about its label, so the operator says it).

Readers yield raw bytes exactly as stored; parsing is the feature extractor's job.
Every failure (missing file, corrupt archive, unreadable mailbox) is a `CorpusError`
phrased for the operator, never a traceback.
"""

from __future__ import annotations

import mailbox
import os
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HAM, SPAM = 0, 1
LABELS = {"ham": HAM, "spam": SPAM}
MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # larger members are read truncated (features cap anyway)


class CorpusError(Exception):
    """A corpus that cannot be read, already phrased as one line for the operator."""


@dataclass(frozen=True)
class LabelledMessage:
    corpus: str  # the corpus name (file or directory name without extension)
    label: int  # HAM or SPAM
    name: str  # where it came from inside the corpus (member path, file name, key)
    raw: bytes


@dataclass(frozen=True)
class CorpusSpec:
    """A parsed --corpus argument: where, and the label when the operator gave one."""

    path: Path
    label: int | None = None

    @property
    def name(self) -> str:
        base = self.path.name
        for suffix in (".tar.gz", ".tgz", ".tar", ".mbox"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
                break
        return base


def parse_spec(text: str) -> CorpusSpec:
    """'PATH', 'ham=PATH' or 'spam=PATH' -> CorpusSpec (the path must exist)."""
    label = None
    prefix, sep, rest = text.partition("=")
    if sep and prefix.lower() in LABELS:
        label, text = LABELS[prefix.lower()], rest
    path = Path(text)
    if not path.exists():
        raise CorpusError(f"{path}: corpus not found")
    return CorpusSpec(path, label)


def read_corpus(spec: CorpusSpec | str) -> Iterator[LabelledMessage]:
    """Every labelled message of one corpus, in a stable order."""
    if isinstance(spec, str):
        spec = parse_spec(spec)
    path = spec.path
    if spec.label is not None:
        yield from _read_labelled(path, spec.label, spec.name)
    elif path.is_file() and _is_tar_name(path):
        yield from _read_tar(path, spec.name)
    elif path.is_dir():
        yield from _read_split_dir(path, spec.name)
    elif path.is_file():
        raise CorpusError(
            f"{path}: cannot tell ham from spam in a single mailbox; "
            "give it as ham=PATH or spam=PATH"
        )
    else:
        raise CorpusError(f"{path}: corpus not found")


def _is_tar_name(path: Path) -> bool:
    return path.name.endswith((".tar.gz", ".tgz", ".tar"))


def _label_of(member: str) -> int | None:
    for part in member.split("/")[:-1]:
        if part in LABELS:
            return LABELS[part]
    return None


def _read_tar(path: Path, corpus: str) -> Iterator[LabelledMessage]:
    """Stream a tar(.gz): members are read in archive order, never extracted to disk."""
    found = 0
    try:
        with tarfile.open(path, mode="r:*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                label = _label_of(member.name)
                if label is None:
                    continue
                fh = tar.extractfile(member)
                if fh is None:
                    continue
                raw = fh.read(MAX_MESSAGE_BYTES)
                found += 1
                yield LabelledMessage(corpus, label, member.name, raw)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        reason = (str(exc) or type(exc).__name__).splitlines()[0].rstrip(":")
        if "could not be opened" in reason:
            reason = "not a gzip, bzip2, xz or tar file"
        raise CorpusError(f"{path}: not a readable tar archive ({reason})") from None
    if not found:
        raise CorpusError(f"{path}: no ham/ or spam/ messages in the archive")


def _read_split_dir(path: Path, corpus: str) -> Iterator[LabelledMessage]:
    sources = []
    for name, label in LABELS.items():
        for candidate in (path / name, path / f"{name}.mbox"):
            if candidate.exists():
                sources.append((candidate, label))
                break
    if not sources:
        raise CorpusError(f"{path}: expected ham/ and spam/ inside (or name a tar.gz archive)")
    for source, label in sources:
        yield from _read_labelled(source, label, corpus)


def _read_labelled(path: Path, label: int, corpus: str) -> Iterator[LabelledMessage]:
    if path.is_dir() and all((path / d).is_dir() for d in ("cur", "new")):
        yield from _read_maildir(path, label, corpus)
    elif path.is_dir():
        yield from _read_plain_dir(path, label, corpus)
    elif path.is_file():
        yield from _read_mbox(path, label, corpus)
    else:
        raise CorpusError(f"{path}: corpus not found")


def _read_plain_dir(path: Path, label: int, corpus: str) -> Iterator[LabelledMessage]:
    files = sorted(
        Path(root) / f
        for root, _dirs, names in os.walk(path)
        for f in names
        if not f.startswith(".")
    )
    for file in files:
        try:
            with file.open("rb") as fh:
                raw = fh.read(MAX_MESSAGE_BYTES)
        except OSError as exc:
            raise CorpusError(f"{file}: cannot read message: {exc.strerror}") from None
        yield LabelledMessage(corpus, label, str(file.relative_to(path.parent)), raw)


def _read_maildir(path: Path, label: int, corpus: str) -> Iterator[LabelledMessage]:
    try:
        box = mailbox.Maildir(path, factory=None, create=False)
        for key in sorted(box.keys()):
            yield LabelledMessage(corpus, label, f"{path.name}/{key}", box.get_bytes(key))
    except (OSError, mailbox.Error) as exc:
        raise CorpusError(f"{path}: cannot read Maildir: {exc}") from None


def _read_mbox(path: Path, label: int, corpus: str) -> Iterator[LabelledMessage]:
    try:
        with path.open("rb") as fh:
            head = fh.read(5)
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read mbox: {exc.strerror}") from None
    if head and head != b"From ":
        raise CorpusError(f"{path}: not an mbox file (it must start with a 'From ' line)")
    try:
        box = mailbox.mbox(path, create=False)
        for index, key in enumerate(box.iterkeys()):
            yield LabelledMessage(corpus, label, f"{path.name}#{index}", box.get_bytes(key))
    except (OSError, mailbox.Error) as exc:
        raise CorpusError(f"{path}: cannot read mbox: {exc}") from None
