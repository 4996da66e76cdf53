"""`campaignflow simulate` as a user runs it: a dry-run printed as a table or as JSON."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.conftest import REPO, cli_env, run_cli

CART = str(REPO / "examples" / "workflows" / "abandoned-cart.json")
BROKEN = str(REPO / "examples" / "invalid" / "broken.json")
SCENARIO = """\
contact: {email: ann@example.com, first_name: Ann}
input: {cartId: c-1, itemCount: 2, total: 150}
events:
  - {after: PT1H, event: order_completed, properties: {cartId: c-2}}
actions:
  send-reminder: {error: "503 from the provider", times: 1}
"""


def scenario_file(tmp_path: Path, text: str = SCENARIO, name: str = "events.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_simulate_prints_the_path_with_messages_and_events(tmp_path: Path) -> None:
    result = run_cli("simulate", CART, "--events", scenario_file(tmp_path), env=cli_env())

    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for expected in ("wait-for-order", "timed_out", "retrying", "send-coupon", "gave-up"):
        assert expected in out
    assert "sendgrid.send_email → ann@example.com" in out
    assert "POST https://coupons.example.com/v1/coupons" in out
    assert "order_completed" in out
    assert "ignored" in out
    assert "completed at 2026-01-02" in out


def test_simulate_json_is_the_result_document(tmp_path: Path) -> None:
    events = scenario_file(
        tmp_path,
        '[{"after": "PT30M", "event": "order_completed", "properties": {"cartId": "c-9"}}]',
        "events.json",
    )
    bare_list = run_cli("simulate", CART, "--events", events, "--json", env=cli_env())

    # a bare list is the events; without the cart id in the input the wait cannot correlate
    assert bare_list.returncode == 0, bare_list.stdout + bare_list.stderr
    document = json.loads(bare_list.stdout)
    assert document["status"] == "failed"
    assert document["path"][0]["nodeId"] == "wait-for-order"
    assert "cartId" in document["error"]["message"]
    assert document["deadLetters"][0]["nodeId"] == "wait-for-order"
    assert document["events"][0]["matched"] is False


def test_simulate_json_shows_a_purchase(tmp_path: Path) -> None:
    events = scenario_file(
        tmp_path,
        "input: {cartId: c-9, itemCount: 1, total: 5}\n"
        "events: [{after: PT30M, event: order_completed, properties: {cartId: c-9}}]\n",
    )

    result = run_cli("simulate", CART, "--events", events, "--json", env=cli_env())

    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(result.stdout)
    assert document["status"] == "completed"
    assert [step["nodeId"] for step in document["path"]] == ["wait-for-order", "purchased"]
    assert document["messages"] == []
    (event,) = document["events"]
    assert (event["matched"], event["nodeId"]) == (True, "wait-for-order")


def test_simulate_refuses_a_broken_workflow_with_its_problems() -> None:
    result = run_cli("simulate", BROKEN, env=cli_env())

    assert result.returncode == 1
    assert "invalid" in result.stdout
    assert "/nodes/0/config/branches/0/next" in result.stdout


def test_simulate_refuses_a_broken_scenario_with_pointers(tmp_path: Path) -> None:
    events = scenario_file(
        tmp_path,
        "horizon: 90 days\n"
        "events:\n"
        "  - {at: yesterday, event: order_completed}\n"
        "actions:\n"
        "  no-such-node: {output: {}}\n",
    )

    result = run_cli("simulate", CART, "--events", events, env=cli_env())
    as_json = run_cli("simulate", CART, "--events", events, "--json", env=cli_env())

    assert result.returncode == 2
    assert f"{events}:/horizon:" in result.stdout
    assert f"{events}:/events/0/at:" in result.stdout
    assert as_json.returncode == 2
    (report,) = json.loads(as_json.stdout)
    assert {problem["pointer"] for problem in report["problems"]} == {
        "/horizon",
        "/events/0/at",
    }


def test_simulate_checks_overrides_against_the_workflow(tmp_path: Path) -> None:
    events = scenario_file(tmp_path, "actions:\n  send-remindr: {error: boom}\n")

    result = run_cli("simulate", CART, "--events", events, env=cli_env())

    assert result.returncode == 2
    assert "/actions/send-remindr" in result.stdout
    assert "unknown_node" in result.stdout
