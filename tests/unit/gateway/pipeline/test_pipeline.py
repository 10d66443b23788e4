"""Pipeline: lookups under one budget, each filter's error policy, per-domain evaluation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

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


def html_message(padding: int) -> MessageContext:
    env = Envelope("a@sender.test", ["b@example.test"], "192.0.2.1")
    raw = (
        b"Subject: x\r\nContent-Type: text/html\r\n\r\n"
        b'<p><a href="http://link.example/x">x</a></p>\r\n' + b"<p>filler</p>\r\n" * padding
    )
    return MessageContext("Q2", env, raw, datetime.now(UTC))


def test_a_big_message_is_parsed_in_a_worker_thread_before_the_lookups():
    big = html_message(10_000)  # about 150 KB: over READ_AHEAD_BYTES
    small = html_message(10)
    verdict = run([SeesParsed()], big)
    facts = verdict.results["example.test"]["sees"].facts
    assert facts == {"parsed_before": True, "urls": ("http://link.example/x",)}
    assert "read_ahead" in verdict.timings_ms
    verdict = run([SeesParsed()], small)
    facts = verdict.results["example.test"]["sees"].facts
    assert facts == {"parsed_before": False, "urls": ("http://link.example/x",)}
    assert "read_ahead" not in verdict.timings_ms
