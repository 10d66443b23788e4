"""`mailwarden scan FILE.eml`: the server's pipeline on one message, without SMTP.

Shows why a mail was treated as it was: per recipient action, score, symbols,
timings; `--out` writes the copy the first recipient would receive.
"""

from __future__ import annotations

import argparse
import asyncio
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from pathlib import Path

from gateway.cli import CliError
from gateway.cli.common import add_config_argument, print_json, settings_from
from gateway.cli.safe_text import echo
from gateway.mail.received import received_context
from gateway.mail.render import render
from gateway.model import Envelope, MessageContext
from gateway.store.spool import new_queue_id


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("scan", help="run the filter pipeline on one message file")
    parser.add_argument("file", type=Path, metavar="FILE.eml")
    add_config_argument(parser, required=False)
    parser.add_argument("--mail-from", default="", metavar="A", help="envelope sender")
    parser.add_argument(
        "--rcpt",
        action="append",
        default=[],
        metavar="B",
        help="envelope recipient (repeat; default: the To/Cc addresses at our domains)",
    )
    parser.add_argument("--client-ip", default="127.0.0.1", metavar="IP")
    parser.add_argument("--helo", default="localhost", metavar="NAME")
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON")
    parser.add_argument("--out", type=Path, metavar="FILE", help="write the delivered copy")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        raw = args.file.read_bytes()
    except OSError as exc:
        raise CliError(f"{args.file}: {exc.strerror or exc}") from None
    # a file with LF only is how mail is stored on disk (mbox, Maildir): not the BARE_LF of
    # an SMTP client that mixes line endings
    lf_only = b"\r\n" not in raw
    rcpts = tuple(args.rcpt) or header_recipients(raw, settings.domains.accept)
    for rcpt in rcpts:
        if "@" not in rcpt:
            raise CliError(f"--rcpt {rcpt!r}: not an address")
    envelope = Envelope(
        mail_from=args.mail_from, rcpt_tos=rcpts, client_ip=args.client_ip, helo=args.helo
    )
    ctx = received_context(new_queue_id(), envelope, raw)
    if lf_only:
        ctx.intake_notes = ctx.intake_notes - {"bare_lf"}
    verdict = asyncio.run(_run_pipeline(settings, ctx))
    first = verdict.decisions[0]
    if args.out:
        from filters.auth import forged_results_dropper

        hostname = settings.smtp.hostname
        copy = render(
            ctx, first.rendering, [first.rcpt], hostname, forged_results_dropper(hostname)
        )
        args.out.write_bytes(copy)
    if args.json:
        print_json(
            {
                "queue_id": ctx.queue_id,
                "action": {d.rcpt: str(d.action) for d in verdict.decisions},
                "score": round(first.score, 3),
                "symbols": [s.as_json() for s in first.symbols],
                "recipients": [d.as_json() for d in verdict.decisions],
                "timings_ms": dict(verdict.timings_ms),
                "classifier": _classifier_explained(settings, ctx),
            }
        )
    else:
        for d in verdict.decisions:
            echo(f"{d.rcpt}: {d.action} (score {d.score:.2f})")
            for s in d.symbols:
                options = f" [{', '.join(s.options)}]" if s.options else ""
                echo(f"  {s.name:32} {s.score:6.2f}{options}")
            for reason in d.reasons:
                echo(f"  reason: {reason}")
    return 0


def _classifier_explained(settings, ctx: MessageContext) -> dict | None:
    """The features that pushed the classifier's score up and down (None: disabled)."""
    if not settings.classifier.enabled:
        return None
    from filters.classifier import load_model

    model = load_model(settings.classifier.model)
    return {
        "model_version": model.version,
        "top_features": model.explain(ctx.message, ctx.parts, ctx.raw),
    }


def header_recipients(raw: bytes, domains: list[str]) -> tuple[str, ...]:
    """To/Cc addresses at our domains (all of them when no domain is configured), as the
    gateway would see them in RCPT TO; else user@ the first domain (not a role account:
    postmaster@ and abuse@ are never quarantined, so they would hide the verdict)."""
    message = BytesHeaderParser(policy=compat32).parsebytes(raw)
    ours = tuple(f"@{d}" for d in domains)
    found = [
        addr
        for header in ("to", "cc")
        for _, addr in getaddresses([str(v) for v in message.get_all(header, [])])
        if "@" in addr and (not ours or addr.lower().endswith(ours))
    ]
    return tuple(dict.fromkeys(found)) or (f"user@{(domains or ['localhost'])[0]}",)


async def _run_pipeline(settings, ctx):
    from gateway.pipeline.assemble import build_pipeline, build_ports
    from gateway.store.db import Database

    db = Database(settings.store.url) if _has_store(settings) else None
    ports = build_ports(settings, db)
    try:
        return await build_pipeline(settings, ports).run(ctx)
    finally:
        if ports.redis is not None:
            await ports.redis.aclose()
        if db is not None:
            db.close()


def _has_store(settings) -> bool:
    """Only a configured gateway has a store worth reading (policies, lists)."""
    return "store" in settings.model_fields_set
