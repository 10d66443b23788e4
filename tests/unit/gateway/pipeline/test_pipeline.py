"""Pipeline: lookups under one budget, each filter's error policy, per-domain evaluation."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from datetime import UTC, datetime

from filters.base import NoLookup
from gateway.adapters import Ports
from gateway.domain_policy import DomainPolicy, PolicyBook
from gateway.model import Action, Envelope, FilterResult, MessageContext, OnError, Symbol
from gateway.pipeline.run import Pipeline


class SlowFilter:
    def __init__(self, name: str, delay: float, on_error: OnError) -> None:
        self.name, self.delay, self.on_error = name, delay, on_error

    async def lookup(self, ctx, ports):
        await asyncio.sleep(self.delay)
        return "found"

    def evaluate(self, ctx, evidence, scope):
        return FilterResult(symbols=(Symbol(f"{self.name.upper()}_SEEN", (scope.domain,)),))


class BrokenFilter:
    name, on_error = "broken", OnError.CONTINUE

    async def lookup(self, ctx, ports):
        raise RuntimeError("boom")

    def evaluate(self, ctx, evidence, scope):  # pragma: no cover - never reached
        raise AssertionError


class ReadsEarlier:
    name, on_error = "later", OnError.CONTINUE

    async def lookup(self, ctx, ports):
        return None

    def evaluate(self, ctx, evidence, scope):
        return FilterResult(facts={"saw": sorted(scope.results)})


def ctx(*rcpts: str) -> MessageContext:
    env = Envelope("a@sender.test", rcpts, "192.0.2.1")
    return MessageContext("Q1", env, b"Subject: x\r\n\r\nbody\r\n", datetime.now(UTC))


def run(chain, message, budget=0.5):
    book = PolicyBook(DomainPolicy("*"))
    return asyncio.run(Pipeline(chain, book, Ports(), budget).run(message))


def test_lookup_past_the_budget_is_that_filters_error():
    chain = [
        SlowFilter("fast", 0.0, OnError.TEMPFAIL),
        SlowFilter("optional", 5.0, OnError.CONTINUE),
    ]
    verdict = run(chain, ctx("b@example.test"))
    results = verdict.results["example.test"]
    assert results["fast"].symbols[0].name == "FAST_SEEN"
    assert results["optional"].error == "timeout after 0.5s"
    assert results["optional"].symbols[0].name == "OPTIONAL_ERROR"
    assert verdict.decisions[0].action == Action.ACCEPT
    assert verdict.timings_ms["total"] < 2000


def test_required_lookup_past_the_budget_tempfails():
    verdict = run([SlowFilter("scanner", 5.0, OnError.TEMPFAIL)], ctx("b@example.test"))
    assert verdict.decisions[0].action == Action.TEMPFAIL


def test_lookup_exception_is_contained_and_later_filters_see_earlier_results():
    verdict = run([BrokenFilter(), ReadsEarlier()], ctx("b@example.test"))
    results = verdict.results["example.test"]
    assert results["broken"].error == "RuntimeError: boom"
    assert results["later"].facts["saw"] == ["broken"]


def test_evaluate_runs_once_per_recipient_domain():
    verdict = run(
        [SlowFilter("f", 0.0, OnError.CONTINUE)],
        ctx("a@one.test", "b@two.test", "c@one.test"),
    )
    assert set(verdict.results) == {"one.test", "two.test"}
    assert verdict.results["two.test"]["f"].symbols[0].options == ("two.test",)
    assert [d.rcpt for d in verdict.decisions] == ["a@one.test", "b@two.test", "c@one.test"]


class SeesParsed:
    """Notes, when its lookup starts on the loop, whether the parts were parsed already."""

    name, on_error = "sees", OnError.CONTINUE

    async def lookup(self, ctx, ports):
        return {"parsed_before": "parts" in vars(ctx), "urls": ctx.urls}

    def evaluate(self, ctx, evidence, scope):
        return FilterResult(facts=evidence)


class RecordingContext(MessageContext):
    """Records the thread that read the message ahead."""

    def read_all(self) -> None:
        self.read_in = threading.current_thread()
        super().read_all()


def html_message(padding: int) -> RecordingContext:
    env = Envelope("a@sender.test", ["b@example.test"], "192.0.2.1")
    raw = (
        b"Subject: x\r\nContent-Type: text/html\r\n\r\n"
        b'<p><a href="http://link.example/x">x</a></p>\r\n' + b"<p>filler</p>\r\n" * padding
    )
    return RecordingContext("Q2", env, raw, datetime.now(UTC))


def test_the_message_is_read_once_before_the_lookups_a_big_one_in_a_worker_thread():
    loop_thread = threading.current_thread()  # asyncio.run runs the loop here
    big = html_message(10_000)  # about 150 KB: over READ_AHEAD_BYTES
    small = html_message(10)
    for message, in_worker in ((big, True), (small, False)):
        verdict = run([SeesParsed()], message)
        facts = verdict.results["example.test"]["sees"].facts
        assert facts == {"parsed_before": True, "urls": ("http://link.example/x",)}
        assert ("read_ahead" in verdict.timings_ms) is in_worker
        assert (message.read_in is not loop_thread) is in_worker


def test_the_relay_alone_reads_the_parts_ahead_but_not_the_text_and_links():
    from filters.message_checks import MessageChecks

    loop_thread = threading.current_thread()
    for message, in_worker in ((html_message(10_000), True), (html_message(10), False)):
        verdict = run([MessageChecks()], message)
        assert verdict.results["example.test"]["message"].facts["parts"] == 1
        assert "parts" in vars(message)  # parsed once, before the checks
        assert "urls" not in vars(message) and "body_text" not in vars(message)
        assert not hasattr(message, "read_in")  # read_all was not called
        assert ("read_ahead" in verdict.timings_ms) is in_worker
    # with any other filter in the chain, everything is read ahead
    both = html_message(10)
    verdict = run([MessageChecks(), Pure()], both)
    assert "urls" in vars(both) and both.read_in is loop_thread


class Pure(NoLookup):
    name = "pure"

    def evaluate(self, ctx, evidence, scope):
        return FilterResult(facts={"evidence": evidence})


class SeesTasks:
    name, on_error = "io", OnError.CONTINUE

    async def lookup(self, ctx, ports):  # every lookup task is made before any runs
        names = (t.get_name() for t in asyncio.all_tasks())
        return sorted(n for n in names if n.startswith("lookup:"))

    def evaluate(self, ctx, evidence, scope):
        return FilterResult(facts={"tasks": evidence})


def test_filters_without_lookup_get_no_task_but_their_evidence_and_timing():
    verdict = run([Pure(), SeesTasks(), ReadsEarlier()], ctx("b@example.test"))
    results = verdict.results["example.test"]
    assert results["io"].facts["tasks"] == ["lookup:io", "lookup:later"]
    assert results["pure"].facts["evidence"] is None
    assert results["later"].facts["saw"] == ["io", "pure"]
    assert verdict.timings_ms["pure"] == 0.0
    assert set(verdict.timings_ms) == {"pure", "io", "later", "evaluate", "total"}


def test_a_failing_policy_read_cancels_the_lookups():
    started: list[asyncio.Task] = []

    class Waits:
        name, on_error = "waits", OnError.CONTINUE

        async def lookup(self, ctx, ports):
            started.append(asyncio.current_task())
            await asyncio.sleep(30)

    async def policies(rcpts):
        await asyncio.sleep(0.01)
        raise RuntimeError("no policies")

    async def go():
        book = PolicyBook(DomainPolicy("*"))
        pipeline = Pipeline([Waits()], book, Ports(), 5.0, av_policies=policies)
        with contextlib.suppress(RuntimeError):
            await pipeline.run(ctx("b@example.test"))
        await asyncio.sleep(0)
        return started[0].cancelled()

    assert asyncio.run(go())
