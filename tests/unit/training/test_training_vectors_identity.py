"""The fast feature path gives exactly the rows, and so the scores, of the code the shipped
model was trained with (frozen in tests/support/frozen_features).

Speed work on training.features / features3 / vectors must not move a single bit: the
shipped model's weights, threshold and group offsets were fitted on the frozen code's
rows. Checked on messages built here (every token path: HTML tricks, CJK, 8-bit and
encoded headers, attachments, headerless mail, tokens that route to other blocks) and,
where the corpora are present, on a sample of each corpus.
"""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime

import numpy as np
import pytest
import scipy.sparse as sp

from gateway.model import Envelope, MessageContext
from gateway.paths import corpora_dir
from tests.support.frozen_features import features as frozen
from tests.support.mailgen import make_message
from training import features
from training.corpus import parse_spec, read_corpus
from training.groups import group_of
from training.model import SpamModel, default_model_path

VERSIONS = features.FEATURES_VERSIONS
CORPUS_SAMPLE = 40  # messages of each corpus (every 25th of the first 1,000)

HTML = (
    b"From: Bank <alert@bank.example>\r\nSubject: =?utf-8?B?VmVyaWZ5IG7DpXU=?=\r\n"
    b"Date: Mon, 3 Mar 2025 10:00:00 +0000\r\nMessage-ID: <a1.b2@bank.example>\r\n"
    b"To: victim@site.example\r\nReceived: from x (y [192.0.2.1]) by mx with ESMTPA id 1;"
    b" Mon, 3 Mar 2025 10:00:00 +0000\r\nX-Mailer: Foo Mailer 2.1\r\n"
    b'Content-Type: text/html; charset="utf-8"\r\n\r\n'
    b'<html><body><div style="display:none">lorem ipsum</div>'
    b'<a href="http://evil.example:8080/login.php?user=1&t=2">www.bank.example</a>'
    b'<a href="https://xn--bnk-qla.example/a/b/c.html#x"><img src="http://evil.example/a.png"></a>'
    b'<A HREF="http://a.example/">Click here now</A><font size="1">tiny</font>'
    b'<p style="color:#ffffff">white</p>fr<!-- x -->ee <form><input></form>'
    b"<script>var x=1</script><table><tr><td>cell</td></tr></table>"
    b"x.com x.25 c d vi-agra 12345 $100 caf\xc3\xa9</body></html>\r\n"
)
MULTIPART = (
    b"From MAILER-DAEMON Thu Jan  1 00:00:00 2004\n"
    b'From: "JOHN SMITH" <john.smith99@mail.example>\nReply-To: other@else.example\n'
    b"Subject: Re: your invoice\nSubject: second subject\nDate: not a date\n"
    b"X-Spam-Status: Yes\nUser-Agent: Mutt/1.5\nContent-Type: multipart/mixed;"
    b' boundary="----=_Part_123_456.789"\nMIME-Version: 1.0\n\n'
    b"------=_Part_123_456.789\nContent-Type: text/plain; charset=iso-8859-1\n"
    b"Content-Transfer-Encoding: quoted-printable\n\nHello caf=E9, see http://1.2.3.4/x?a=b"
    b" and mailto:me@x.example\n"
    b"------=_Part_123_456.789\nContent-Type: application/octet-stream;"
    b' name="invoice.pdf.exe"\nContent-Disposition: attachment; filename="invoice.pdf.exe"\n'
    b"Content-Transfer-Encoding: base64\n\nTVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAA\n"
    b"------=_Part_123_456.789--\n"
)
CHINESE = (
    "From: =?gb2312?B?1dTI/Q==?= <zs@example.cn>\nSubject: 发票 优惠\n"
    "Content-Type: text/plain\n\n"
    "我们公司常年代开发票，优惠多多，欢迎来电咨询。联系电话：13800000000\n"
).encode("gb18030")
HEADERLESS = b"Subject: meeting tomorrow\n\nplease bring the q3 numbers . thanks !\n"
EIGHT_BIT = (
    b"From: M\xfcller <m@x.example>\nSubject: Gr\xfc\xdfe \xe4\xf6\n"
    b"Content-Type: text/plain; charset=utf-8\n\n" + b"a" * 1200 + b"\nword\x00x.y c:z\n"
)
NUL_HEADER = b"From: a@b.example\nX-Mailer: x\x00c:mailer\nSubject: nul\n\nbody\n"
EMPTY = b""
BUILT = [HTML, MULTIPART, CHINESE, HEADERLESS, EIGHT_BIT, NUL_HEADER, EMPTY]


def _same_rows(a: sp.csr_matrix, b: sp.csr_matrix) -> None:
    assert a.shape == b.shape
    assert a.data.dtype == b.data.dtype
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.data, b.data)  # bit for bit: no tolerance


def _messages() -> list[bytes]:
    rng = random.Random(14)
    return BUILT + [make_message(i % 2 == 1, rng, i) for i in range(40)]


def _corpus_sample() -> list[bytes]:
    found = sorted(corpora_dir().glob("*.tar.gz"))
    out: list[bytes] = []
    for path in found:
        messages = itertools.islice(read_corpus(parse_spec(str(path))), 0, 1000, 25)
        out.extend(m.raw for m in itertools.islice(messages, CORPUS_SAMPLE))
    return out


@pytest.fixture(scope="module")
def corpus_messages() -> list[bytes]:
    raws = _corpus_sample()
    if not raws:
        pytest.skip(f"no corpora in {corpora_dir()} (set MAILWARDEN_CORPORA to check them)")
    return raws


def _check(raws: list[bytes], version: str) -> None:
    new = [features.extract_raw(r, version=version) for r in raws]
    old = [frozen.extract_raw(r, version=version) for r in raws]
    for n, o in zip(new, old, strict=True):
        assert n.tokens == o.tokens  # in order: group_of reads the first 400
        assert n.fingerprint == o.fingerprint
        if version == "mw-features-3":
            np.testing.assert_array_equal(n.raw_grams, o.raw_grams)
    for size in (1, 7, len(raws)):  # one message as the gateway scores, and batches
        for start in range(0, len(raws), size):
            chunk = slice(start, start + size)
            _same_rows(
                features.vectorize(
                    [f.tokens for f in new[chunk]], version, [f.raw_grams for f in new[chunk]]
                ),
                frozen.vectorize(
                    [f.tokens for f in old[chunk]], version, [f.raw_grams for f in old[chunk]]
                ),
            )


@pytest.mark.parametrize("version", VERSIONS)
def test_built_messages_give_the_frozen_rows(version):
    _check(_messages(), version)


@pytest.mark.parametrize("version", VERSIONS)
def test_corpus_messages_give_the_frozen_rows(version, corpus_messages):
    _check(corpus_messages, version)


def test_odd_token_lists_route_and_count_as_before():
    """Tokens the extractor rarely or never makes: NUL inside, empty, duplicates,
    prefixes of other blocks inside a word, non-ASCII first bytes."""
    lists = [
        ["x.a", "x.a", "c:ab", "c:", "x.", "", "w", "\x00x.b", "a\x00c:d", "é", "xx.", "cc:"],
        [],
        ["c:é", "x.é", "s:x.y", "x.com", "word"] * 3,
        ["only"],
    ]
    grams = [np.array([0, 5, 1048575], np.int32), None, np.zeros(0, np.int32), None]
    for version in VERSIONS:
        _same_rows(
            features.vectorize(lists, version, grams), frozen.vectorize(lists, version, grams)
        )
        for row, row_grams in zip(lists, grams, strict=True):
            _same_rows(
                features.vectorize([row], version, [row_grams]),
                frozen.vectorize([row], version, [row_grams]),
            )


def _frozen_score(model: SpamModel, tokens: list[str], grams: np.ndarray | None) -> float:
    row = frozen.vectorize([tokens], model.features_version, [grams])
    return float(model.decision(row)[0] + model.group_offsets.get(group_of(tokens), 0.0))


def _gateway_scores_as_before(raws: list[bytes]) -> None:
    """policy.default parse and MIME parts (MessageContext), as the classifier filter does."""
    model = SpamModel.load(default_model_path())
    env = Envelope(mail_from="a@b.example", rcpt_tos=("c@d.example",), client_ip="192.0.2.1")
    now = datetime.now(UTC)
    for index, raw in enumerate(raws):
        ctx = MessageContext(f"q{index}", env, raw, now)
        old = frozen.extract(ctx.message, ctx.parts, raw=raw, fingerprint=False)
        expected = _frozen_score(model, old.tokens, old.raw_grams)
        assert model.score_message(ctx.message, ctx.parts, raw) == expected
        assert model.score_raw(raw) == _frozen_score(
            model, *_tokens_and_grams(frozen.extract_raw(raw, fingerprint=False))
        )


def _tokens_and_grams(feats: frozen.MessageFeatures) -> tuple[list[str], np.ndarray | None]:
    return feats.tokens, feats.raw_grams


def test_the_shipped_model_scores_built_messages_exactly_as_before():
    _gateway_scores_as_before(_messages())


def test_the_shipped_model_scores_corpus_messages_exactly_as_before(corpus_messages):
    _gateway_scores_as_before(corpus_messages[::2])


def test_batches_score_as_each_message_alone_scored_before(corpus_messages):
    """`eval` scores 128 messages at a time: each row's score is the frozen single one."""
    model = SpamModel.load(default_model_path())
    feats = [features.extract_raw(r, fingerprint=False) for r in corpus_messages[:60]]
    scores = model.scores([f.tokens for f in feats], [f.raw_grams for f in feats])
    expected = [_frozen_score(model, f.tokens, f.raw_grams) for f in feats]
    assert scores.tolist() == expected


def test_the_word_cache_stays_bounded_and_gives_the_same_grams(monkeypatch):
    """Character 4-grams come from a cache shared across messages: emptied when full, so
    memory stays flat, with the tokens of the frozen code all along."""
    cache = features._CHAR_WORDS
    monkeypatch.setattr(cache, "limit", 50)
    cache.clear()
    rng = random.Random(3)
    for round_ in range(20):
        text = (
            " ".join(
                "".join(rng.choice("abcdefghij") for _ in range(rng.randint(1, 12)))
                for _ in range(40)
            )
            + " 发票优惠 café ok ok"
        )
        new: list[str] = []
        old: list[str] = []
        features._char_tokens(text, new)
        frozen._char_tokens(text, old)
        assert new == old, round_
        assert len(cache) <= 50
    cache.clear()
