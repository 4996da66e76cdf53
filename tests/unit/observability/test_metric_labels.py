"""Label logic of the metrics: bounded, free of ids, and the gauges' bookkeeping."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.routing import APIRoute
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Gauge

from campaignflow.observability.access_log import method_label, route_template
from campaignflow.observability.metrics import (
    REGISTRY,
    BreakerStates,
    events_ingested,
    trigger_matched,
)
from campaignflow.observability.metrics_sampler import GaugeFamily, backlog_values
from campaignflow.store.metrics_queries import Backlog

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


async def _endpoint() -> None:
    """A route's endpoint (never called)."""


def test_a_request_is_labelled_by_its_route_template_never_its_path() -> None:
    # A router included under a prefix: the route carries its own template only.
    route = APIRoute("/executions/{execution_id}", _endpoint)
    scope = {"method": "GET", "path": "/api/v1/executions/ex_secret_42", "route": route}
    root = APIRoute("/v1/track", _endpoint)

    assert route_template(scope) == "/api/v1/executions/{execution_id}"
    assert route_template({"path": "/v1/track", "route": root}) == "/v1/track"
    assert route_template({"method": "GET", "path": "/nowhere/jane@example.com"}) == "unmatched"


def test_unknown_methods_share_one_label() -> None:
    assert method_label({"method": "PATCH"}) == "PATCH"
    assert method_label({"method": "BREW-COFFEE-4711"}) == "other"


def test_ingested_events_are_counted_per_workspace() -> None:
    first, second = (f"ws-{uuid.uuid4().hex[:8]}" for _ in range(2))

    events_ingested([first, second, first], "segment")

    def count(workspace: str) -> float | None:
        labels = {"workspace": workspace, "source": "segment"}
        return REGISTRY.get_sample_value("campaignflow_events_ingested_total", labels)

    assert (count(first), count(second)) == (2, 1)


def test_trigger_latency_is_one_sample_per_event_and_never_negative() -> None:
    count = REGISTRY.get_sample_value("campaignflow_trigger_match_seconds_count") or 0
    total = REGISTRY.get_sample_value("campaignflow_trigger_match_seconds_sum") or 0

    trigger_matched([NOW - timedelta(milliseconds=40), NOW + timedelta(seconds=1)], NOW)

    assert REGISTRY.get_sample_value("campaignflow_trigger_match_seconds_count") == count + 2
    assert REGISTRY.get_sample_value("campaignflow_trigger_match_seconds_sum") == pytest.approx(
        total + 0.04
    )


MODES = st.sampled_from(["closed", "half_open", "open"])
VALUE = {"closed": 0, "half_open": 1, "open": 2}


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), MODES), min_size=1))
def test_a_providers_breaker_gauge_is_its_worst_accounts_last_state(
    seen: list[tuple[str, str]],
) -> None:
    registry = CollectorRegistry()
    states = BreakerStates(Gauge("breaker", "test", ["provider"], registry=registry))
    last: dict[str, str] = {}
    for account, mode in seen:
        states.observe("sendgrid", account, mode)
        last[account] = mode

    shown = registry.get_sample_value("breaker", {"provider": "sendgrid"})
    assert shown == max(VALUE[mode] for mode in last.values())


def test_a_sample_replaces_the_series_and_drops_those_gone() -> None:
    registry = CollectorRegistry()
    family = GaugeFamily(Gauge("depth", "test", ["workflow"], registry=registry))

    family.replace({("cart",): 3, ("welcome",): 1})
    family.replace({("cart",): 5})

    assert registry.get_sample_value("depth", {"workflow": "cart"}) == 5
    assert registry.get_sample_value("depth", {"workflow": "welcome"}) is None


def test_backlog_lag_is_the_age_of_the_oldest_due_task() -> None:
    rows = [
        Backlog("ws", "cart", "send", 4, NOW - timedelta(seconds=90)),
        Backlog("ws", "cart", "wait", 1, NOW + timedelta(seconds=2)),  # a clock ahead of ours
    ]

    depth, lag = backlog_values(rows, NOW.timestamp())

    assert depth == {("ws", "cart", "send"): 4.0, ("ws", "cart", "wait"): 1.0}
    assert lag == {("ws", "cart", "send"): 90.0, ("ws", "cart", "wait"): 0.0}
