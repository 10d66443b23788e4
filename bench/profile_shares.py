"""Shares of a py-spy profile by component: `python bench/profile_shares.py STACKS.txt`.

Reads the collapsed stacks that `bench/chain.py --profile` and `bench/relay.py
--profile` write (py-spy's raw format) and gives each sample to the first
component that matches a frame, walking from the innermost frame outwards: the
email parser's frames count as MIME parsing whoever called it, SQLAlchemy's as
the books. Prints JSON, largest share first.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter

COMPONENTS = [
    ("classifier (features, hashing, model)", r"training/|sklearn|scipy|numpy|filters/classifier"),
    ("MIME parsing, text, URLs", r"email/|gateway/mail/mime|html/parser|_markupbase|quopri"),
    (
        "ledger and database (SQLAlchemy, SQLite)",
        r"sqlalchemy|sqlite|gateway/store/(ledger|db|schema|quarantine|av_policy)",
    ),
    ("spool writes", r"gateway/store/spool"),
    ("DNS client (dnspython)", r"dns/|gateway/adapters/dns"),
    ("SPF, DKIM, DMARC logic", r"filters/auth|spf\.py|dkim/|publicsuffix"),
    ("blocklist", r"filters/blocklist"),
    ("clamd and antivirus", r"filters/antivirus|gateway/adapters/clamd|gateway/mail/archives"),
    ("rules and lists", r"filters/rules|filters/locallists|gateway/lists|re2"),
    (
        "message checks, structure, rendering",
        r"filters/message_checks|gateway/mail/(structure|render|edit|received)",
    ),
    ("SMTP session (aiosmtpd, handler, intake)", r"aiosmtpd|gateway/smtp/"),
    ("delivery (aiosmtplib, outbound)", r"aiosmtplib|gateway/delivery"),
    ("pipeline, events, metrics, logging", r"gateway/pipeline|gateway/monitor|logging/|prometheus"),
    ("thread-pool hand-offs", r"concurrent/futures|threading\.py|queue\.py"),
    ("event loop (asyncio, uvloop)", r"asyncio/|uvloop"),
]
_COMPILED = [(name, re.compile(pattern)) for name, pattern in COMPONENTS]


def shares(lines: list[str]) -> tuple[dict[str, float], int]:
    counts: Counter[str] = Counter()
    total = 0
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        component = "other"
        for frame in reversed(stack.split(";")):
            hit = next((name for name, rx in _COMPILED if rx.search(frame)), None)
            if hit:
                component = hit
                break
        counts[component] += n
    return {k: round(100 * v / total, 1) for k, v in counts.most_common()}, total


def main() -> None:
    with open(sys.argv[1]) as fh:
        table, total = shares(fh.readlines())
    print(json.dumps({"samples": total, "percent": table}, indent=2))


if __name__ == "__main__":
    main()
