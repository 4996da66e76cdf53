"""U+0000 in a JSON body is refused with a pointer to each place (PostgreSQL cannot store it)."""

from __future__ import annotations

from http import HTTPStatus

import orjson
import pytest

from campaignflow.api.body import parse_json
from campaignflow.api.problems import ProblemError


def test_nul_in_values_and_member_names_is_refused_with_pointers() -> None:
    body = orjson.dumps({"subject": "a\x00b", "input": {"ok": "fine", "k\x00": [1, "x\x00"]}})

    with pytest.raises(ProblemError) as caught:
        parse_json(body)

    assert caught.value.status == HTTPStatus.UNPROCESSABLE_ENTITY
    pointers = [problem["pointer"] for problem in caught.value.problems]
    assert pointers == ["/input/k\x00", "/input/k\x00/1", "/subject"]


def test_an_escaped_backslash_before_u0000_is_not_a_nul() -> None:
    body = b'{"text": "C:\\\\u0000 is a path, not a NUL"}'
    assert parse_json(body) == {"text": "C:\\u0000 is a path, not a NUL"}


def test_a_body_without_nul_parses_unchanged() -> None:
    document = {"subject": "contact-1", "input": {"list": [1, 2, {"deep": "value"}]}}
    assert parse_json(orjson.dumps(document)) == document
