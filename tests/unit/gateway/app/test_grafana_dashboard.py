"""docs/grafana-dashboard.json asks only for metrics the gateway exports."""

from __future__ import annotations

import json
import re

from prometheus_client import REGISTRY

import gateway.monitor.metrics  # noqa: F401 - registers the gateway's metrics
from tests.support.gateway import REPO

DASHBOARD = REPO / "docs" / "grafana-dashboard.json"
# families made at scrape time by gateway/app/exporter.py's HealthCollector
PROBED = {
    "mailwarden_component_up",
    "mailwarden_clamav_signatures_info",
    "mailwarden_clamav_signature_age_seconds",
    "mailwarden_feedback_total",
}


def _exported() -> set[str]:
    names = set(PROBED)
    for family in REGISTRY.collect():
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
        names |= {family.name + s for s in suffixes.get(family.type, ("",))}
    return names


def test_every_panel_queries_an_exported_metric():
    dashboard = json.loads(DASHBOARD.read_text())
    exported = _exported()
    asked = set()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = set(re.findall(r"\bmailwarden_[a-z_]+", target["expr"]))
            assert names, target["expr"]
            asked |= names
    assert not asked - exported, sorted(asked - exported)
    # and the dashboard shows the SLA-relevant ones
    assert {
        "mailwarden_delivery_delay_seconds_bucket",
        "mailwarden_queue_oldest_age_seconds",
        "mailwarden_component_up",
        "mailwarden_clamav_signature_age_seconds",
    } <= asked
