"""A connector's own verdict on an answer: Meta's throttling comes as HTTP 400 with a code, and
must be retried like a 429 (not fail the step for good), without counting against the breaker."""

from __future__ import annotations

from typing import Any

import pytest

from campaignflow.integrations.connector import Verdict, classify_answer
from campaignflow.integrations.providers import builtin_connectors
from campaignflow.integrations.providers.meta_ads import META_ADS

PACING = Verdict(ok=False, retryable=True, breaker_failure=False)


def meta_error(code: int, subcode: int | None = None, **extra: Any) -> dict[str, Any]:
    error: dict[str, Any] = {"message": "x", "type": "OAuthException", "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": {**error, **extra}}


@pytest.mark.parametrize("code", [4, 17, 32, 613, 80003, 80014])
def test_metas_rate_limit_codes_are_retried_as_pacing(code: int) -> None:
    assert classify_answer(META_ADS, 400, meta_error(code)) == PACING


def test_metas_ad_account_throttle_subcode_is_pacing_too() -> None:
    assert classify_answer(META_ADS, 400, meta_error(100, subcode=2446079)) == PACING


def test_metas_transient_errors_are_retried_and_count_against_the_breaker() -> None:
    transient = Verdict(ok=False, retryable=True, breaker_failure=True)
    assert classify_answer(META_ADS, 500, meta_error(2)) == transient
    assert classify_answer(META_ADS, 400, meta_error(100, is_transient=True)) == transient


def test_metas_other_errors_keep_the_status_verdict() -> None:
    # a bad parameter (code 100) is the request's fault: not retried
    assert classify_answer(META_ADS, 400, meta_error(100)) == Verdict(ok=False)
    assert classify_answer(META_ADS, 400, "not json") == Verdict(ok=False)
    assert classify_answer(META_ADS, 200, {"audience_id": "1"}) == Verdict(ok=True)
    assert classify_answer(META_ADS, 503, None).retryable


def test_connectors_without_their_own_verdict_classify_by_status() -> None:
    for connector in builtin_connectors().values():
        if connector.classify is None:
            assert classify_answer(connector, 400, meta_error(17)) == Verdict(ok=False)
            assert classify_answer(connector, 429, None) == PACING
