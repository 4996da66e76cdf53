"""The shipped Prometheus rules and Grafana dashboard: valid, tested, and naming our metrics.

A renamed metric breaks these tests, not an operator's dashboard months later.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from campaignflow.observability.metrics import REGISTRY
from tests._support.promtool import run_promtool

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboard.json"
METRIC = re.compile(r"\bcampaignflow_[a-z_]+")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported_names() -> set[str]:
    """Every series name our registry can export (a family with no series yet included)."""
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    return names


def dashboard_expressions(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_the_alert_rules_pass_promtool_check() -> None:
    output = run_promtool("check", "rules", str(RULES))

    assert "SUCCESS: 10 rules found" in output


def test_the_alert_rules_unit_tests_pass() -> None:
    """The unit tests prove rules fire on synthetic series and stay quiet otherwise; a rule
    changed so that it no longer fires (or fires too early) fails them."""
    output = run_promtool("test", "rules", "alerts_test.yml", cwd=RULES.parent)

    assert "SUCCESS" in output


def test_every_rule_has_a_severity_a_summary_a_description_and_a_for() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"]]

    assert len(rules) == 10
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert {"summary", "description"} <= rule["annotations"].keys(), rule["alert"]
        assert rule["for"], rule["alert"]


def test_the_rules_name_only_metrics_we_export() -> None:
    named = set(METRIC.findall(RULES.read_text()))

    assert named
    assert named <= exported_names(), named - exported_names()


def test_the_dashboard_has_a_datasource_variable_and_a_recent_schema() -> None:
    dashboard = json.loads(DASHBOARD.read_text())

    variables = {item["name"]: item for item in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert dashboard["schemaVersion"] >= 39
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_the_dashboard_queries_only_metrics_we_export_and_all_of_them() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    named = {name for expr in dashboard_expressions(dashboard) for name in METRIC.findall(expr)}
    missing = [
        family.name
        for family in REGISTRY.collect()
        if family.name.startswith("campaignflow_")
        and not any(family.name + suffix in named for suffix in SUFFIXES[family.type])
    ]

    assert named <= exported_names(), named - exported_names()
    assert not missing, f"families without a panel: {missing}"
