"""`campaignflow validate`, `apply`, `migrate` and `up` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.e2e.conftest import REPO, cli_env, owner_key_in, run_cli, start_server

EXAMPLES = REPO / "examples" / "workflows"
BROKEN = REPO / "examples" / "invalid" / "broken.json"


def test_validate_accepts_every_example() -> None:
    result = run_cli("validate", str(EXAMPLES), env=cli_env())

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok") >= 4


def test_validate_prints_every_problem_with_its_path_and_fails() -> None:
    result = run_cli("validate", "--json", str(BROKEN), env=cli_env())

    assert result.returncode == 1
    report = json.loads(result.stdout)
    problems = report[0]["problems"]
    assert len(problems) >= 5
    assert all(p["pointer"].startswith("/") for p in problems)
    assert len({p["code"] for p in problems}) >= 4


def test_validate_reports_syntax_errors_with_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "workflowId": "x",\n  "name": \n}\n')

    result = run_cli("validate", str(bad), env=cli_env())

    assert result.returncode == 1
    assert "line 4" in result.stdout or "line 3" in result.stdout


def test_apply_is_idempotent(database_url: str, tmp_path: Path) -> None:
    env = cli_env(CAMPAIGNFLOW_DATABASE_URL=database_url)

    first = run_cli("apply", str(EXAMPLES), env=env)
    second = run_cli("apply", str(EXAMPLES), "--activate", env=env)

    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.count("created") == len(list(EXAMPLES.glob("*.json")))
    assert second.returncode == 0, second.stdout + second.stderr
    assert "created" not in second.stdout
    assert second.stdout.count("unchanged") == len(list(EXAMPLES.glob("*.json")))
    assert "(active)" in second.stdout


def test_apply_writes_nothing_when_one_file_is_invalid(database_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "good.json").write_text((EXAMPLES / "welcome-series.json").read_text())
    (folder / "bad.json").write_text(BROKEN.read_text())
    env = cli_env(CAMPAIGNFLOW_DATABASE_URL=database_url)

    result = run_cli("apply", str(folder), env=env)
    after = run_cli("apply", str(EXAMPLES), env=env)

    assert result.returncode == 1
    assert "invalid" in result.stdout
    assert "created" in after.stdout
    assert "welcome-series" in after.stdout


def test_up_starts_with_examples_and_prints_the_owner_key_once(tmp_path: Path) -> None:
    env = cli_env(CAMPAIGNFLOW_DATA_DIR=str(tmp_path / "data"), PYTHONUNBUFFERED="1")
    del env["CAMPAIGNFLOW_ENCRYPTION__MASTER_KEY"]  # up makes its own key file
    args = ["up", "--load-examples", str(EXAMPLES)]

    with start_server(args, env, tmp_path / "up.log") as server:
        key = owner_key_in(server.log.read_text(encoding="utf-8"))
        anonymous = httpx.get(f"{server.url}/api/v1/workflows", timeout=5)
        listed = httpx.get(
            f"{server.url}/api/v1/workflows",
            headers={"Authorization": f"Bearer {key}"},
            timeout=5,
        )
        ready = httpx.get(f"{server.url}/readyz", timeout=5)
    with start_server(args, env, tmp_path / "again.log") as server:
        again = httpx.get(
            f"{server.url}/api/v1/workflows", headers={"Authorization": f"Bearer {key}"}, timeout=5
        )
        second_banner = server.output()

    assert anonymous.status_code == 401
    assert listed.status_code == 200
    ids = {item["workflowId"] for item in listed.json()["items"]}
    assert {"welcome-series", "abandoned-cart", "re-engagement", "lead-scoring"} <= ids
    assert ready.status_code == 200
    assert key not in second_banner  # shown once
    assert "create-key" in second_banner
    assert again.status_code == 200
    data = tmp_path / "data"
    assert (data / "keys.json").stat().st_mode & 0o077 == 0
    for stored in data.iterdir():  # only the key's hash is kept
        assert key.encode() not in stored.read_bytes(), stored


def test_serve_refuses_to_start_without_a_token(database_url: str) -> None:
    env = cli_env(CAMPAIGNFLOW_DATABASE_URL=database_url)
    del env["CAMPAIGNFLOW_ENCRYPTION__MASTER_KEY"]
    result = run_cli("serve", env=env)

    assert result.returncode == 2
    assert "CAMPAIGNFLOW_ENCRYPTION__MASTER_KEY" in result.stderr


def test_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    env = cli_env(
        CAMPAIGNFLOW_DATABASE_URL=f"sqlite:///{tmp_path / 'empty.db'}",
        CAMPAIGNFLOW_API_TOKEN="a-long-enough-token-for-serve-123",
    )

    result = run_cli("serve", env=env)
    migrated = run_cli("migrate", env=env)

    assert result.returncode == 2
    assert "campaignflow migrate" in result.stderr
    assert migrated.returncode == 0
    assert "revision" in migrated.stdout
