"""Masking of log data: what must never reach a log file, and what must stay readable."""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaignflow.security.masking import (
    CYCLE,
    MAX_DEPTH,
    PHONE,
    REDACTED,
    TOO_DEEP,
    UNPRINTABLE,
    mask_query,
    mask_text,
    mask_value,
)

# --- generated personal data and secrets -------------------------------------------------------

# Text around a seeded value: no ASCII letters or digits and no "@", so it can never contain
# (part of) the seed itself, which would make "the seed is absent" fail for the wrong reason.
filler = st.text(
    alphabet=st.characters(
        codec="utf-8",
        exclude_categories=("Nd",),
        exclude_characters=string.ascii_letters + string.digits + "@",
    ),
    max_size=30,
)
# ' = and / end what comes before an address in logs (``email='…'``, ``to=…``), so the rule
# does not take them into an address; an address must not end its local part with one. A local
# part of stars only ("*@a.ai") would be found inside its own mask ("***@a.ai").
emails = st.emails().filter(
    lambda email: email.split("@")[0][-1] not in "'=/" and email.split("@")[0].strip("*")
)
digits = st.text(alphabet=string.digits, min_size=1, max_size=1)


def _grouped(number: str, separator: str, size: int) -> str:
    return separator.join(number[i : i + size] for i in range(0, len(number), size))


@st.composite
def e164(draw: st.DrawFn) -> str:
    first = draw(st.sampled_from("123456789"))
    rest = draw(st.text(alphabet=string.digits, min_size=7, max_size=14))
    separator = draw(st.sampled_from(["", " ", "-", "."]))
    return "+" + _grouped(first + rest, separator, draw(st.integers(2, 4)))


@st.composite
def north_american(draw: st.DrawFn) -> str:
    area = draw(st.sampled_from("23456789")) + draw(st.text(string.digits, min_size=2, max_size=2))
    exchange = draw(st.sampled_from("23456789")) + draw(
        st.text(string.digits, min_size=2, max_size=2)
    )
    line = draw(st.text(string.digits, min_size=4, max_size=4))
    shape = draw(
        st.sampled_from(
            ["({a}) {e}-{l}", "{a}-{e}-{l}", "{a}.{e}.{l}", "{a} {e} {l}", "1-{a}-{e}-{l}"]
        )
    )
    return shape.format(a=area, e=exchange, l=line)


@st.composite
def national(draw: st.DrawFn) -> str:
    """UK and French shapes: a trunk 0, then groups."""
    number = draw(st.text(string.digits, min_size=9, max_size=9))
    shape = draw(st.sampled_from(["uk", "uk-mobile", "fr"]))
    if shape == "uk":
        return f"0{number[:2]} {number[2:6]} {number[6:]}9"
    if shape == "uk-mobile":
        return f"07{number[:3]} {number[3:]}"
    return "0" + number[0] + " " + _grouped(number[1:], " ", 2)


phones = st.one_of(e164(), north_american(), national())
b64url = st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=12, max_size=60)
jwts = st.builds(lambda h, p, s: f"eyJ{h}.{p}.{s}", b64url, b64url, b64url)
our_keys = st.builds(
    lambda visible, secret: f"cf_{visible}_{secret}",
    st.text(alphabet=string.ascii_letters + string.digits, min_size=8, max_size=8),
    st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=43, max_size=43),
)
bearer_values = st.text(alphabet=string.ascii_letters + string.digits + "-._~+/", min_size=12)
secrets = st.one_of(jwts, our_keys)


def embedded(seed: str, before: str, after: str) -> str:
    return f"{before} {seed} {after}"


@given(emails, filler, filler)
def test_no_generated_email_survives(email: str, before: str, after: str) -> None:
    masked = mask_text(embedded(email, before, after))
    assert email not in masked
    assert f"***@{email.split('@')[1]}" in masked


@given(phones, filler, filler)
def test_no_generated_phone_number_survives(phone: str, before: str, after: str) -> None:
    masked = mask_text(embedded(phone, before, after))
    assert phone not in masked
    assert PHONE in masked


@given(secrets, filler, filler)
def test_no_generated_token_or_api_key_survives(secret: str, before: str, after: str) -> None:
    assert secret not in mask_text(embedded(secret, before, after))


@given(bearer_values, st.sampled_from(["Bearer", "bearer", "BEARER"]), filler, filler)
def test_no_bearer_token_survives(token: str, scheme: str, before: str, after: str) -> None:
    masked = mask_text(embedded(f"{scheme} {token}", before, after))
    assert token not in masked
    assert f"{scheme} {REDACTED}" in masked


@given(
    st.one_of(st.text(), st.builds(embedded, st.one_of(emails, phones, secrets), filler, filler))
)
def test_masking_is_idempotent(text: str) -> None:
    once = mask_text(text)
    assert mask_text(once) == once


@given(
    st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=("Nd",), exclude_characters="@")
    )
)
def test_text_without_digits_or_at_signs_is_unchanged(text: str) -> None:
    assert mask_text(text) == text


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(json_values)
def test_masking_a_structure_is_idempotent(value: object) -> None:
    once = mask_value(value)
    assert mask_value(once) == once


# --- what is masked, and what is left alone ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("signed up: jane.doe+news@example.com", "signed up: ***@example.com"),
        ("to=Jane@Mail.Example.co.uk;", "to=***@Mail.Example.co.uk;"),
        ("{'email': 'jane@example.com'}", "{'email': '***@example.com'}"),
        ("/api/v1/contacts/jane@example.com", "/api/v1/contacts/***@example.com"),
        ("call +1 (415) 555-2671 now", f"call {PHONE} now"),
        ("+442079460958, +44 20 7946 0958", f"{PHONE}, {PHONE}"),
        ("(415) 555-2671 / 415-555-2671 / 415.555.2671", f"{PHONE} / {PHONE} / {PHONE}"),
        ("UK 020 7946 0958, 07700 900123", f"UK {PHONE}, {PHONE}"),
        ("FR 06 12 34 56 78.", f"FR {PHONE}."),
        ("call +14155552671: no answer", f"call {PHONE}: no answer"),
        ("Authorization: Bearer abc.def.ghi\nnext", f"Authorization: {REDACTED}\nnext"),
        ("cookie: sid=abc; theme=dark", f"cookie: {REDACTED}"),
        ("X-Api-Key: k123", f"X-Api-Key: {REDACTED}"),
        ("sent with bearer abc.def.ghi", f"sent with bearer {REDACTED}"),
        ("Basic dXNlcjpwYXNz", f"Basic {REDACTED}"),
        ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln end", f"token {REDACTED} end"),
        ("alg none: eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.", f"alg none: {REDACTED}"),
        ("key cf_Ab12Cd34_" + "s" * 43, f"key cf_Ab12Cd34_{REDACTED}"),
        ("bootstrap cf_" + "s" * 43, f"bootstrap cf_{REDACTED}"),
        ("redis://default:hunter2@cache:6379/0", f"redis://default:{REDACTED}@cache:6379/0"),
        ("https://ghp_abc@github.com/x", f"https://{REDACTED}@github.com/x"),
        (
            "/cb?state=ok&token=t1&api_key=k2&secret=s3&password=p4&access_token=a5"
            "&client_secret=c6",
            f"/cb?state=ok&token={REDACTED}&api_key={REDACTED}&secret={REDACTED}"
            f"&password={REDACTED}&access_token={REDACTED}&client_secret={REDACTED}",
        ),
        (
            '{"password": "hunter 2", "refresh_token": 7, "name": "x"}',
            f'{{"password": "{REDACTED}", "refresh_token": {REDACTED}, "name": "x"}}',
        ),
        ("SG.abcdefghijklmnopqrst.abcdefghijklmnopqrstuv", REDACTED),
    ],
)
def test_masks(text: str, expected: str) -> None:
    assert mask_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "execution 12345678 took 1500 ms",
        "2024-01-15T10:30:00.123456Z",
        "2024-01-15 10:30:00,123",
        "2024-01-15T10:30:00+02:00",
        "epoch 1718000000, in ms 1718000000123",
        "duration 12.5ms, 0.25 s, 3,600 s",
        "client 192.168.100.200:53211, ::1",
        "id 123e4567-e89b-12d3-a456-426614174000",
        "version 1.2.3, HTTP/1.1 200, port 8080",
        "+1000 events in 20 batches of 500",
        "order 000123 total $1,234.56",
        "shard 03 of 16 at 01-15",
        "redis key cf:events:owner:3, cf_events_stream",
        "token_type=bearer expires_in=3600",
        "basic settings applied",
        "client_secret_basic and client_secret_post",
        "campaignflow.api.auth",
    ],
)
def test_leaves_ordinary_numbers_and_words_alone(text: str) -> None:
    assert mask_text(text) == text


@pytest.mark.parametrize(
    "key",
    [
        "authorization", "Authorization", "password", "passwd", "secret", "client_secret",
        "clientSecret", "token", "access_token", "refresh_token", "api_key", "apikey", "API-Key",
        "x-api-key", "cookie", "set-cookie", "private_key", "write_key", "credentials",
        "hubspot_access_token", "db_password",
    ],
)  # fmt: skip
def test_credential_keys_are_redacted_whole(key: str) -> None:
    assert mask_value({key: "Bearer abc", "kept": "plain"}) == {key: REDACTED, "kept": "plain"}


def test_personal_keys_are_masked_by_kind() -> None:
    masked = mask_value(
        {
            "email": "Jane@Example.com",
            "emailAddress": "not an address",
            "phone": "4155552671",
            "phone_number": 4155552671,
            "mobile": "+44 7700 900123",
            "firstName": "Jane",
            "contact": {"emails": ["a@b.co", "c@d.org"], "user_id": "u1", "phone": None},
        }
    )
    assert masked == {
        "email": "***@Example.com",
        "emailAddress": REDACTED,
        "phone": PHONE,
        "phone_number": PHONE,
        "mobile": PHONE,
        "firstName": REDACTED,
        "contact": {"emails": ["***@b.co", "***@d.org"], "user_id": "u1", "phone": None},
    }


def test_other_values_are_scanned_as_text_and_numbers_kept() -> None:
    masked = mask_value({"note": "from jane@example.com", "count": 3, "ratio": 0.5, "ok": True})
    assert masked == {"note": "from ***@example.com", "count": 3, "ratio": 0.5, "ok": True}


def test_keys_are_masked_too() -> None:
    assert mask_value({"jane@example.com": 1}) == {"***@example.com": 1}


class _Contact:
    def __str__(self) -> str:
        return "Contact(email=jane@example.com)"


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")


def test_odd_values_never_raise() -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    looped: dict[str, Any] = {}
    looped["self"] = looped
    deep: Any = "x"
    for _ in range(MAX_DEPTH + 5):
        deep = [deep]
    masked = mask_value(
        {
            "raw": b"to jane@example.com \xff",
            "object": _Contact(),
            "broken": _Unprintable(),
            "tuple": ("a@b.co",),
            "cyclic": cyclic,
            "looped": looped,
            "deep": deep,
            3: "int key",
        }
    )
    assert isinstance(masked, dict)
    assert masked["raw"] == "to ***@example.com \ufffd"
    assert masked["object"] == "Contact(email=***@example.com)"
    assert masked["broken"] == UNPRINTABLE
    assert masked["tuple"] == ["***@b.co"]
    assert masked["cyclic"] == [CYCLE]
    assert masked["looped"] == {"self": CYCLE}
    assert TOO_DEEP in str(masked["deep"])
    assert masked["3"] == "int key"


def test_a_query_string_is_masked_after_decoding() -> None:
    query = "email=jane%40example.com&q=a%2Bb%40c.io&limit=20&token=zz&phone=%2B14155552671"
    assert mask_query(query) == (
        f"email=***@example.com&q=***@c.io&limit=20&token={REDACTED}&phone={PHONE}"
    )
