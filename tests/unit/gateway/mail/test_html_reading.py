"""The fast HTML reading (plain tags by one match each) gives exactly the text and links
of html.parser's own reading, on real mail and on markup built to break it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.mail import mime
from gateway.mail.received import normalise
from gateway.model import Envelope, MessageContext
from gateway.paths import corpora_dir
from tests.support.corpus_sample import corpus_sample


def reference(markup: str) -> tuple[str, tuple[str, ...]]:
    return mime._html_read_with(mime._HtmlText, markup)


def fast(markup: str) -> tuple[str, tuple[str, ...]]:
    return mime._html_read_with(mime._FastHtmlText, markup)


def test_the_gateway_reads_html_the_fast_way():
    assert mime._READER is mime._FastHtmlText


ODD = [
    '<p class="x">a</p><br/><BR /><A HREF="http://a.test/?x=1&amp;y=2">b</A>',
    "<a href=http://bare.test/x>bare</a><a href=x/>slash</a><img src='q.png'/>",
    '<a href="">empty</a><a href>none</a><a href = "  spaced  " >s</a><a hreF=  x >',
    '<a href="x>inside">q</a><a href=\'y" z\'>r</a><a title="a>b" href="c">d</a>',
    '<a href="x"href="y">nospace</a><p\x0bclass=x>vt</p><p\xa0class=x>nbsp</p>',
    "<script>var a = '</b>'; if (a<b) x();</script>after<style>p{}</style><title>t</title>",
    "<SCRIPT>x</SCRIPT ><script>x</ script>y</script>z<textarea><b>t</b></textarea>",
    "<!DOCTYPE html><!-- c --><!--> x --><!-- a -- b --><![CDATA[x]]><?pi x?><!bogus>",
    "</p ><//p></ p></>x</3>y<3 <>z< a>w<a<b>c</b>",
    "&amp; &lt;b&gt; &#x48;&#105; &nbsp;&copy &unknown; &#xZZ; &",
    '<a href="&#104;ttp://ent.test/">e</a><a href="http&#58;//x.test/&quo">f</a>',
    "<a \u017frc=x ſrc=y>long s</a><img \u212aey=1 src=k.png><a HREF=\u0130x>",
    "<div><table><tr><td>1</td><td>2</td></tr></table></div><li>l<h1>h</h1><hr>",
    "<head><title>t</title><meta content=x></head><body>b</body>",
    "text then an unclosed <a href='http://cut.test/",
    "text then <a href=x",
    "text then &am",
    "a < b and c > d, 1<2",
    "<a\nhref\n=\n'multi\nline'\n>ml</a><p\r\nclass=x>crlf</p>",
    "<img src=a.png alt=x/><br/ ><br / ><br//><p/x>",
    "<A\tHREF=\"t\"\tCLASS='c'\t>tab</A>",
    '<a href="x" =y>eq</a><a ="x">noname</a><a href=="x">double</a>',
    "<a href=`x`>bt</a><a href=x'y>q</a><a href=x\"y>dq</a>",
    "<p>\u4e2d\u6587<a href='http://\u4f8b\u3048.test/'>idn</a></p>",
]


@pytest.mark.parametrize("markup", ODD)
def test_odd_markup_reads_the_same(markup):
    assert fast(markup) == reference(markup)


_FRAGMENTS = st.sampled_from(
    [
        "<p>",
        "</p>",
        "<a href='http://a.test/'>",
        '<A HREF="x">',
        "</a>",
        "<br/>",
        "<br />",
        "<img src=y.png>",
        "<script>",
        "</script>",
        "<style>",
        "</style>",
        "<title>",
        "</title>",
        "<!--",
        "-->",
        "<!DOCTYPE html>",
        "<![CDATA[",
        "]]>",
        "<?x",
        "?>",
        "<",
        ">",
        "</",
        "/>",
        "&amp;",
        "&#",
        "&#x41;",
        "&lt",
        "&",
        ";",
        "'",
        '"',
        "=",
        " ",
        "\n",
        "\t",
        "\x0b",
        "\xa0",
        "href",
        "src",
        "ſrc",
        "x",
        "http://b.test/p?q=1",
        "www.c.test",
        "<div",
        "<td>",
        "</ td>",
        "<textarea>",
        "</textarea>",
        "<head>",
        "</head>",
        "<a",
        " href=",
    ]
)


@settings(max_examples=400, deadline=None, database=None, derandomize=True)
@given(st.lists(_FRAGMENTS | st.text(max_size=6), max_size=40))
def test_built_markup_reads_the_same(pieces):
    markup = "".join(pieces)
    assert fast(markup) == reference(markup)


@pytest.fixture(scope="module")
def corpus() -> tuple[bytes, ...]:
    raws = corpus_sample()
    if not raws:
        pytest.skip(f"no corpora in {corpora_dir()} (set MAILWARDEN_CORPORA to check them)")
    return raws


def test_real_mail_reads_the_same(corpus):
    """Every text part of the sample, HTML or not, read as HTML both ways."""
    envelope = Envelope("a@x.test", ("b@y.test",), "192.0.2.1")
    read = 0
    for raw in corpus:
        ctx = MessageContext("q", envelope, normalise(raw)[0], datetime(2026, 1, 1, tzinfo=UTC))
        for part in ctx.parts:
            if part.content_type.startswith("text/"):
                markup = mime.decode_text(part.payload, part.charset)
                assert fast(markup) == reference(markup)
                read += 1
    assert read > len(corpus) // 2
