"""gateway.mail.mime.message_urls: every web URL a reader could follow, text and HTML links."""

from __future__ import annotations

from email.message import EmailMessage

from gateway.mail.mime import leaf_parts, message_urls


def parts_of(msg: EmailMessage):
    return list(leaf_parts(msg))


def test_urls_from_plain_text_html_text_and_html_links_in_order_without_repeats():
    msg = EmailMessage()
    msg.set_content("Go to https://a.test/x, or www.b.test. Again https://a.test/x")
    msg.add_alternative(
        '<p>Visible http://c.test/ <a href="https://hidden.test/p?q=1">click</a>'
        '<img src="//img.test/t.gif"> <a href="mailto:x@y.test">m</a>'
        '<a href="#top">top</a> <a href="cid:part1">c</a></p>',
        subtype="html",
    )
    assert message_urls(parts_of(msg)) == [
        "https://a.test/x",
        "www.b.test",
        "http://c.test/",
        "https://hidden.test/p?q=1",
        "http://img.test/t.gif",
    ]


def test_attachments_are_not_read_for_urls_and_the_limit_holds():
    msg = EmailMessage()
    msg.set_content(" ".join(f"http://d{i}.test/" for i in range(10)))
    msg.add_attachment(
        b"http://in-attachment.test/",
        maintype="application",
        subtype="octet-stream",
        filename="x.bin",
    )
    urls = message_urls(parts_of(msg), limit=3)
    assert urls == ["http://d0.test/", "http://d1.test/", "http://d2.test/"]
    assert all("in-attachment" not in u for u in message_urls(parts_of(msg)))
