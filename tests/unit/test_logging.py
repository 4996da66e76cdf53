"""The process's logs: one JSON object per line, and nothing seeded in them survives."""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime

import pytest
import structlog
from pydantic import ValidationError

from campaignflow.config import get_settings
from campaignflow.observability.log_settings import LogSettings
from tests._support.log_capture import captured_logs, json_lines

EMAIL = "jane.doe@example.com"
PHONE = "+44 20 7946 0958"
API_KEY = "cf_Ab12Cd34_" + "q7" * 21 + "x"
BEARER = "abc.def.ghi"
QUERY_SECRET = "s3cr3t-query-value"
SEEDS = (EMAIL, PHONE, API_KEY, BEARER, QUERY_SECRET, "jane.doe%40example.com")


def _log_everything_once() -> None:
    """One line from each kind of source a process has."""
    logging.getLogger("x").info("user %s", EMAIL)
    structlog.get_logger("y").info("calling provider", authorization=f"Bearer {BEARER}")
    try:
        raise RuntimeError(f"could not reach {PHONE} with {API_KEY}")
    except RuntimeError:
        logging.getLogger("campaignflow.engine").exception("action failed")
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:53211",
        "GET",
        f"/api/v1/contacts?email=jane.doe%40example.com&token={QUERY_SECRET}",
        "1.1",
        200,
    )


def test_every_source_is_written_as_masked_json_lines() -> None:
    with captured_logs() as stream:
        _log_everything_once()

    output = stream.getvalue()
    for seed in SEEDS:
        assert seed not in output
    lines = json_lines(stream)
    assert [line["logger"] for line in lines] == ["x", "y", "campaignflow.engine", "uvicorn.access"]
    for line in lines:
        assert list(line)[:4] == ["timestamp", "level", "logger", "event"]
        stamp = datetime.fromisoformat(line["timestamp"])
        assert stamp.utcoffset() is not None
        assert stamp.utcoffset() == UTC.utcoffset(stamp)
    user, call, failure, access = lines
    assert user["event"] == "user ***@example.com"
    assert call["authorization"] == "[REDACTED]"
    assert failure["level"] == "error"
    assert (
        "RuntimeError: could not reach [PHONE] with cf_Ab12Cd34_[REDACTED]" in failure["exception"]
    )
    assert "Traceback" in failure["exception"]
    assert "email=***@example.com&token=[REDACTED]" in access["event"]


def test_extra_fields_become_masked_fields() -> None:
    with captured_logs() as stream:
        logging.getLogger("campaignflow.x").warning(
            "contact merged", extra={"contact_email": EMAIL, "attempt": 2}
        )

    (line,) = json_lines(stream)
    assert line["event"] == "contact merged"
    assert line["contact_email"] == "***@example.com"
    assert line["attempt"] == 2


def test_the_console_format_is_masked_too() -> None:
    with captured_logs(format="console") as stream:
        _log_everything_once()

    output = stream.getvalue()
    assert "user ***@example.com" in output
    assert not output.startswith("{")
    for seed in SEEDS:
        assert seed not in output


def test_the_level_setting_drops_lower_lines() -> None:
    with captured_logs(level="warning") as stream:
        logging.getLogger("x").info("routine")
        structlog.get_logger("y").info("routine")
        logging.getLogger("x").warning("unusual")

    assert [line["event"] for line in json_lines(stream)] == ["unusual"]


def test_handlers_installed_earlier_cannot_bypass_the_masking() -> None:
    legacy_output = io.StringIO()
    legacy = logging.getLogger("legacy.library")
    legacy.addHandler(logging.StreamHandler(legacy_output))
    legacy.propagate = False
    try:
        with captured_logs() as stream:
            legacy.warning("sent to %s", EMAIL)
    finally:
        legacy.handlers.clear()
        legacy.propagate = True

    assert legacy_output.getvalue() == ""
    assert json_lines(stream)[0]["event"] == "sent to ***@example.com"


def test_a_broken_log_call_does_not_print_its_raw_arguments(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with captured_logs() as stream:
        logging.getLogger("x").info("%s and %s", EMAIL)  # noqa: PLE1206 — the bug under test

    assert EMAIL not in capsys.readouterr().err
    assert EMAIL not in stream.getvalue()


def test_log_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPAIGNFLOW_LOG__FORMAT", "console")
    monkeypatch.setenv("CAMPAIGNFLOW_LOG__LEVEL", "debug")

    settings = get_settings()

    assert (settings.log.format, settings.log.level) == ("console", "DEBUG")


def test_an_unknown_level_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown log level"):
        LogSettings(level="verbose")
