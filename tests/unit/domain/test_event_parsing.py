from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaignflow.domain.event_parsing import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_EVENT_BYTES,
    BatchTooLarge,
    MalformedEvents,
    ParsedBatch,
    parse_native_batch,
    parse_native_event,
    parse_segment_batch,
    parse_segment_call,
)
from campaignflow.domain.events import EVENT_TYPES, EventType
from campaignflow.errors import ClientError

RECEIVED = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
WORKSPACE = "ws_1"


def _ids() -> Any:
    counter = iter(range(1_000_000))
    return lambda: f"gen-{next(counter)}"


def _body(document: Any) -> bytes:
    return msgspec.json.encode(document)


def call(kind: EventType, message: dict[str, Any], **options: Any) -> ParsedBatch:
    options.setdefault("new_message_id", _ids())
    return parse_segment_call(
        kind, _body(message), workspace_id=WORKSPACE, received_at=RECEIVED, **options
    )


def batch(messages: list[Any], **envelope: Any) -> ParsedBatch:
    body = _body({"batch": messages, **envelope})
    return parse_segment_batch(
        body, workspace_id=WORKSPACE, received_at=RECEIVED, new_message_id=_ids()
    )


def track(**members: Any) -> dict[str, Any]:
    return {"type": "track", "event": "Signed Up", "userId": "u1", **members}


def pointers(parsed: ParsedBatch) -> list[str]:
    return [problem.pointer for problem in parsed.problems]


def codes(parsed: ParsedBatch) -> list[str]:
    return [problem.code for problem in parsed.problems]


# --- What segment-analytics-python sends ------------------------------------------------------


def test_the_exact_body_segment_analytics_python_posts_parses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from segment.analytics import request as segment_request
    from segment.analytics.client import Client

    sent: list[bytes] = []

    class _Accepted:
        status_code = 200

    def capture(url: str, **kwargs: Any) -> _Accepted:
        assert url.endswith("/v1/batch")
        sent.append(kwargs["data"].encode())
        return _Accepted()

    monkeypatch.setattr(segment_request._session, "post", capture)
    client = Client("write-key", send=False)
    at = datetime(2025, 3, 1, 11, 59, 0, 123000, tzinfo=UTC)
    messages = [
        client.track(user_id=42, event="Order Completed", properties={"total": 9.5}, timestamp=at)[
            1
        ],
        client.identify(anonymous_id="a1", traits={"email": "a@example.com"}, timestamp=at)[1],
        client.page(user_id="u1", category="Docs", name="Install", timestamp=at)[1],
        client.screen(user_id="u1", name="Home", timestamp=at)[1],
        client.group(user_id="u1", group_id=7, traits={"plan": "pro"}, timestamp=at)[1],
        client.alias(previous_id="a1", user_id="u1", timestamp=at)[1],
    ]
    client.consumers[0].request(messages)  # the library's own upload path, network replaced

    parsed = parse_segment_batch(sent[0], workspace_id=WORKSPACE, received_at=RECEIVED)

    assert parsed.problems == []
    assert [event.type for event in parsed.events] == list(EVENT_TYPES)
    sent_at = datetime.fromisoformat(json.loads(sent[0])["sentAt"])
    for event, message in zip(parsed.events, messages, strict=True):
        assert event.message_id == message["messageId"]
        assert event.context["library"]["name"] == "analytics-python"
        assert event.original_timestamp == at
        assert event.sent_at == sent_at
        assert event.timestamp == RECEIVED - (sent_at - at)
    track_event, identify, page, screen, group, alias = parsed.events
    assert (track_event.name, track_event.user_id) == ("Order Completed", "42")
    assert track_event.properties == {"total": 9.5}
    assert (identify.anonymous_id, identify.user_id) == ("a1", None)
    assert identify.traits == {"email": "a@example.com"}
    assert (page.name, screen.name) == ("Install", "Home")
    assert (group.group_id, group.traits) == ("7", {"plan": "pro"})
    assert (alias.previous_id, alias.user_id) == ("a1", "u1")


# --- Types --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", EVENT_TYPES)
def test_a_single_call_takes_its_type_from_the_path(kind: EventType) -> None:
    message = {"event": "E", "userId": "u1", "groupId": "g1", "previousId": "p1"}
    parsed = call(kind, message)
    assert [event.type for event in parsed.events] == [kind]
    assert call(kind, {**message, "type": kind}).events[0].type == kind


def test_a_single_call_refuses_a_body_type_that_disagrees_with_the_path() -> None:
    parsed = call("identify", track())
    assert (parsed.events, parsed.rejected_indexes) == ([], [0])
    assert (pointers(parsed), codes(parsed)) == (["/type"], ["type_mismatch"])


def test_a_batch_message_needs_a_known_type() -> None:
    parsed = batch([{"userId": "u1"}, {"type": "Track", "userId": "u1"}, {"type": 1}])
    assert pointers(parsed) == ["/batch/0/type", "/batch/1/type", "/batch/2/type"]
    assert codes(parsed) == ["missing", "unknown_type", "unknown_type"]


def test_native_messages_default_to_track() -> None:
    body = _body({"event": "Clicked", "userId": "u1"})
    parsed = parse_native_event(body, workspace_id=WORKSPACE, received_at=RECEIVED)
    assert [(e.type, e.name) for e in parsed.events] == [("track", "Clicked")]
    body = _body({"events": [{"event": "A", "userId": "u1"}, {"type": "identify"}]})
    parsed = parse_native_batch(body, workspace_id=WORKSPACE, received_at=RECEIVED)
    assert [e.name for e in parsed.events] == ["A"]
    assert pointers(parsed) == ["/events/1/userId"]


# --- Members ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "code"),
    [(None, "missing"), ("", "missing"), (3, "not_a_string"), ("x" * 201, "too_long")],
)
def test_track_needs_a_short_event_name(event: Any, code: str) -> None:
    parsed = call("track", {"event": event, "userId": "u1"})
    assert (pointers(parsed), codes(parsed)) == (["/event"], [code])
    assert call("track", {"event": "x" * 200, "userId": "u1"}).events[0].name == "x" * 200


@pytest.mark.parametrize("kind", EVENT_TYPES)
def test_every_type_needs_an_identity(kind: EventType) -> None:
    parsed = call(kind, {"event": "E", "groupId": "g", "previousId": "p", "userId": None})
    assert pointers(parsed) == ["/userId"]


@pytest.mark.parametrize(
    ("sent", "stored"),
    [(42, "42"), (7.0, "7"), (1.5, "1.5"), ("abc", "abc"), ("x" * 200, "x" * 200)],
)
def test_identities_are_strings_or_numbers_coerced_to_strings(sent: Any, stored: str) -> None:
    event = call("identify", {"userId": sent, "anonymousId": sent}).events[0]
    assert (event.user_id, event.anonymous_id) == (stored, stored)


@pytest.mark.parametrize(
    ("sent", "code"), [(True, "not_a_string"), ({"id": 1}, "not_a_string"), ("x" * 201, "too_long")]
)
def test_identities_of_other_shapes_are_refused(sent: Any, code: str) -> None:
    parsed = call("identify", {"anonymousId": "a1", "userId": sent})
    assert (pointers(parsed), codes(parsed)) == (["/userId"], [code])


def test_an_empty_user_id_counts_as_not_given() -> None:
    assert call("identify", {"userId": "", "anonymousId": "a1"}).events[0].user_id is None
    assert codes(call("identify", {"userId": "", "anonymousId": ""})) == ["missing_identity"]


def test_group_needs_a_group_id_and_alias_a_previous_id_and_user_id() -> None:
    assert pointers(call("group", {"userId": "u1"})) == ["/groupId"]
    assert pointers(call("alias", {"anonymousId": "a1"})) == ["/previousId", "/userId"]


@pytest.mark.parametrize(
    ("kind", "member"),
    [("track", "properties"), ("page", "properties"), ("identify", "traits"), ("group", "traits")]
    + [(kind, "context") for kind in EVENT_TYPES],
)
def test_properties_traits_and_context_must_be_objects(kind: EventType, member: str) -> None:
    message = {"event": "E", "userId": "u1", "groupId": "g", "previousId": "p", member: [1]}
    parsed = call(kind, message)
    assert (pointers(parsed), codes(parsed)) == ([f"/{member}"], ["not_an_object"])


def test_page_and_screen_names_become_the_event_name() -> None:
    assert call("page", {"userId": "u1", "name": "Pricing"}).events[0].name == "Pricing"
    assert call("screen", {"userId": "u1"}).events[0].name is None
    assert pointers(call("screen", {"userId": "u1", "name": 5})) == ["/name"]


def test_traits_are_kept_for_identify_and_group_only() -> None:
    context = {"traits": {"email": "a@example.com"}, "ip": "127.0.0.1"}
    identify = call("identify", {"userId": "u1", "traits": {"plan": "pro"}}).events[0]
    assert identify.traits == {"plan": "pro"}
    tracked = call("track", track(context=context, traits={"plan": "pro"})).events[0]
    assert (tracked.traits, tracked.context) == ({}, context)


def test_unknown_members_are_ignored() -> None:
    message = track(integrations={"All": False}, writeKey="k", category=5, anything=[None])
    parsed = call("track", message)
    assert parsed.problems == []
    assert "integrations" not in parsed.events[0].context


# --- messageId and duplicates -------------------------------------------------------------------


def test_a_missing_message_id_is_generated() -> None:
    assert call("track", track()).events[0].message_id == "gen-0"
    event = parse_segment_call(
        "track", _body(track(messageId="")), workspace_id=WORKSPACE, received_at=RECEIVED
    ).events[0]
    assert event.message_id.startswith("cf-")
    assert len(event.message_id) == 3 + 32
    assert call("track", track(messageId="m-1")).events[0].message_id == "m-1"


@pytest.mark.parametrize(("sent", "code"), [(5, "not_a_string"), ("m" * 201, "too_long")])
def test_a_message_id_must_be_a_short_string(sent: Any, code: str) -> None:
    parsed = call("track", track(messageId=sent))
    assert (pointers(parsed), codes(parsed)) == (["/messageId"], [code])


def test_repeated_message_ids_in_one_batch_are_dropped_and_counted() -> None:
    parsed = batch(
        [
            track(messageId="m1", event="first"),
            track(messageId="m2"),
            track(messageId="m1", event="again"),
            track(messageId="m1", event="and again"),
        ]
    )
    assert [e.message_id for e in parsed.events] == ["m1", "m2"]
    assert parsed.events[0].name == "first"
    assert (parsed.duplicates, parsed.problems, parsed.rejected_indexes) == (2, [], [])


def test_messages_without_a_message_id_are_never_duplicates() -> None:
    parsed = batch([track(), track()])
    assert ([e.message_id for e in parsed.events], parsed.duplicates) == (["gen-0", "gen-1"], 0)


def test_a_refused_message_does_not_claim_its_message_id() -> None:
    parsed = batch([track(messageId="m1", userId=None), track(messageId="m1")])
    assert ([e.message_id for e in parsed.events], parsed.duplicates) == (["m1"], 0)
    assert parsed.rejected_indexes == [0]


# --- Timestamps ---------------------------------------------------------------------------------

offsets = st.integers(-1439, 1439).map(lambda minutes: timezone(timedelta(minutes=minutes)))
moments = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1), timezones=offsets
)


@given(original=moments, sent=moments, received=moments)
def test_skew_correction_keeps_the_senders_delay(
    original: datetime, sent: datetime, received: datetime
) -> None:
    message = track(originalTimestamp=original.isoformat(), sentAt=sent.isoformat())
    event = parse_segment_call(
        "track", _body(message), workspace_id=WORKSPACE, received_at=received
    ).events[0]
    assert event.timestamp - received == original - sent
    assert (event.original_timestamp, event.sent_at) == (original, sent)
    assert event.timestamp.tzinfo == UTC


def test_the_original_is_original_timestamp_else_timestamp() -> None:
    sent = "2025-03-01T10:00:10Z"
    both = track(originalTimestamp="2025-03-01T10:00:00Z", timestamp="2025-01-01T00:00:00Z")
    assert call("track", {**both, "sentAt": sent}).events[0].timestamp == RECEIVED - timedelta(
        seconds=10
    )
    only_timestamp = track(timestamp="2025-03-01T10:00:07Z", sentAt=sent)
    assert call("track", only_timestamp).events[0].timestamp == RECEIVED - timedelta(seconds=3)


def test_without_sent_at_the_original_is_kept_and_without_it_received_at() -> None:
    original = datetime(2025, 2, 1, tzinfo=UTC)
    event = call("track", track(timestamp=original.isoformat())).events[0]
    assert (event.timestamp, event.sent_at, event.original_timestamp) == (original, None, original)
    event = call("track", track(sentAt="2025-02-01T00:00:00Z")).events[0]
    assert (event.timestamp, event.received_at) == (RECEIVED, RECEIVED)


def test_a_message_sent_at_wins_over_the_batch_sent_at() -> None:
    message = track(timestamp="2025-03-01T10:00:00Z")
    parsed = batch(
        [message, {**message, "sentAt": "2025-03-01T10:00:05Z"}], sentAt="2025-03-01T10:00:01Z"
    )
    assert [e.timestamp for e in parsed.events] == [
        RECEIVED - timedelta(seconds=1),
        RECEIVED - timedelta(seconds=5),
    ]


@pytest.fixture
def host_far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run in a host zone that is not UTC, so "naive means UTC" cannot pass by accident."""
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("host_far_from_utc")
def test_timestamps_without_an_offset_are_utc_and_rfc3339_lower_case_is_read() -> None:
    event = call("track", track(timestamp="2025-02-01T08:30:00")).events[0]
    assert event.timestamp == datetime(2025, 2, 1, 8, 30, tzinfo=UTC)
    event = call("track", track(timestamp="2025-02-01t08:30:00.5z")).events[0]
    assert event.timestamp == datetime(2025, 2, 1, 8, 30, 0, 500000, tzinfo=UTC)
    event = call("track", track(timestamp="2025-02-01T10:30:00+02:00")).events[0]
    assert event.timestamp == datetime(2025, 2, 1, 8, 30, tzinfo=UTC)


@pytest.mark.parametrize("member", ["timestamp", "originalTimestamp", "sentAt"])
@pytest.mark.parametrize("value", ["yesterday", "2025-13-01T00:00:00Z", 1700000000, ""])
def test_an_unreadable_timestamp_is_a_problem_at_its_member(member: str, value: Any) -> None:
    parsed = batch([track(), track(**{member: value})])
    assert (pointers(parsed), codes(parsed)) == ([f"/batch/1/{member}"], ["invalid_timestamp"])


def test_a_correction_out_of_range_is_a_problem() -> None:
    message = track(timestamp="0001-01-02T00:00:00Z", sentAt="9999-01-01T00:00:00Z")
    parsed = call("track", message)
    assert (pointers(parsed), codes(parsed)) == (["/timestamp"], ["timestamp_out_of_range"])


@pytest.mark.usefixtures("host_far_from_utc")
def test_a_naive_received_at_is_utc() -> None:
    naive = datetime(2025, 3, 1, 12, 0)
    parsed = parse_segment_call("track", _body(track()), workspace_id="w", received_at=naive)
    assert parsed.events[0].received_at == RECEIVED


# --- Limits -------------------------------------------------------------------------------------


def _message_of_size(size: int) -> bytes:
    """A track message whose JSON is exactly ``size`` bytes."""
    empty = _body(track(properties={"pad": ""}))
    return _body(track(properties={"pad": "x" * (size - len(empty))}))


@given(limit=st.integers(300, 3000), delta=st.integers(-5, 5), position=st.integers(0, 3))
def test_a_message_over_the_size_limit_is_refused_at_its_pointer(
    limit: int, delta: int, position: int
) -> None:
    items = [_body(track())] * 3
    items.insert(position, _message_of_size(limit + delta))
    body = b'{"batch":[' + b",".join(items) + b"]}"
    parsed = parse_segment_batch(
        body, workspace_id=WORKSPACE, received_at=RECEIVED, max_event_bytes=limit
    )
    if delta > 0:
        assert parsed.rejected_indexes == [position]
        assert (pointers(parsed), codes(parsed)) == ([f"/batch/{position}"], ["event_too_large"])
    else:
        assert (len(parsed.events), parsed.problems) == (4, [])


def test_the_default_message_limit_is_32_kib() -> None:
    assert DEFAULT_MAX_EVENT_BYTES == 32 * 1024
    assert call("track", json.loads(_message_of_size(32 * 1024))).problems == []
    parsed = call("track", json.loads(_message_of_size(32 * 1024 + 1)))
    assert (pointers(parsed), codes(parsed), parsed.rejected_indexes) == (
        [""],
        ["event_too_large"],
        [0],
    )


@given(limit=st.integers(100, 5000), delta=st.integers(-3, 3))
def test_a_body_over_the_limit_raises(limit: int, delta: int) -> None:
    body = _body({"batch": [track()]})
    body += b" " * (limit + delta - len(body))
    for parse in (parse_segment_batch, parse_native_event):
        if delta > 0:
            with pytest.raises(BatchTooLarge) as raised:
                parse(body, workspace_id=WORKSPACE, received_at=RECEIVED, max_body_bytes=limit)
            assert (raised.value.size, raised.value.limit) == (limit + delta, limit)
            assert isinstance(raised.value, ClientError)
        else:
            parse(body, workspace_id=WORKSPACE, received_at=RECEIVED, max_body_bytes=limit)


def test_the_default_body_limit_is_500_kib() -> None:
    assert DEFAULT_MAX_BODY_BYTES == 500 * 1024
    body = _body({"batch": [track()]})
    with pytest.raises(BatchTooLarge):
        parse_segment_batch(
            body + b" " * (500 * 1024), workspace_id=WORKSPACE, received_at=RECEIVED
        )


# --- U+0000 -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("members", "pointer"),
    [
        ({"properties": {"a": ["ok", {"b": "x\x00y"}]}}, "/batch/1/properties/a/1/b"),
        ({"properties": {"k\x00": 1}}, "/batch/1/properties/k\x00"),
        ({"userId": "u\x00"}, "/batch/1/userId"),
        ({"event": "\x00"}, "/batch/1/event"),
        ({"context": {"page": {"url": "\x00"}}}, "/batch/1/context/page/url"),
        ({"messageId": "m\x00"}, "/batch/1/messageId"),
    ],
)
def test_a_nul_character_is_a_problem_at_its_string(members: dict[str, Any], pointer: str) -> None:
    parsed = batch([track(), track(**members)])
    assert (pointers(parsed), codes(parsed)) == ([pointer], ["nul_character"])
    assert parsed.rejected_indexes == [1]


def test_a_nul_is_found_however_deep_it_is_nested() -> None:
    deep: Any = "\x00"
    for _ in range(900):
        deep = [deep]
    parsed = call("track", track(properties={"a": deep}))
    assert [p.path for p in parsed.problems] == [("properties", "a", *[0] * 900)]


@pytest.mark.parametrize("parse", [parse_segment_batch, parse_native_event])
def test_a_body_nested_too_deeply_raises_a_client_error(parse: Any) -> None:
    body = b'{"batch": [{"properties": ' + b"[" * 5000 + b"]" * 5000 + b"}]}"
    with pytest.raises(MalformedEvents, match="too deeply"):
        parse(body, workspace_id=WORKSPACE, received_at=RECEIVED)


def test_nul_problems_within_a_member_come_in_document_order() -> None:
    message = track(properties={"a": "\x00", "b": ["\x00", {"c\x00": 1}], "d": "\x00"})
    assert pointers(call("track", message)) == [
        "/properties/a",
        "/properties/b/0",
        "/properties/b/1/c\x00",
        "/properties/d",
    ]


def test_an_escaped_backslash_before_u0000_is_not_a_nul() -> None:
    assert call("track", track(properties={"path": "C:\\u0000"})).problems == []


def test_a_nul_in_an_ignored_member_is_ignored() -> None:
    assert call("track", track(integrations={"x": "\x00"})).problems == []


# --- Envelopes ----------------------------------------------------------------------------------


def test_the_batch_context_is_merged_under_each_message_context() -> None:
    context = {"library": {"name": "rudder"}, "ip": "10.0.0.1"}
    parsed = batch(
        [track(), track(context={"ip": "10.0.0.2", "locale": "fr"})],
        context=context,
        integrations={"All": True},
    )
    assert [e.context for e in parsed.events] == [
        context,
        {"library": {"name": "rudder"}, "ip": "10.0.0.2", "locale": "fr"},
    ]


@pytest.mark.parametrize(
    ("envelope", "pointer"),
    [
        ({"sentAt": "soon"}, "/sentAt"),
        ({"context": "x"}, "/context"),
        ({"context": {"a": "\x00"}}, "/context/a"),
    ],
)
def test_a_bad_batch_member_refuses_the_body(envelope: dict[str, Any], pointer: str) -> None:
    with pytest.raises(MalformedEvents) as raised:
        batch([track()], **envelope)
    assert [problem.pointer for problem in raised.value.problems] == [pointer]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "not valid JSON"),
        (b"{'batch': []}", "not valid JSON"),
        (b"[]", 'must be an object with a "batch" array'),
        (b'{"events": []}', 'must be an object with a "batch" array'),
        (b'{"batch": {}}', 'must be an object with a "batch" array'),
    ],
)
def test_a_body_that_is_not_an_object_of_messages_raises(body: bytes, message: str) -> None:
    with pytest.raises(MalformedEvents, match=message):
        parse_segment_batch(body, workspace_id=WORKSPACE, received_at=RECEIVED)


@pytest.mark.parametrize("body", [b"[]", b'"track"', b"{"])
def test_a_single_call_that_is_not_an_object_raises(body: bytes) -> None:
    with pytest.raises(MalformedEvents):
        parse_segment_call("track", body, workspace_id=WORKSPACE, received_at=RECEIVED)


_BAD_MESSAGES: list[tuple[Any, tuple[str, ...]]] = [
    ([1], ()),
    (track(userId=None), ("userId",)),
    (track(timestamp="later"), ("timestamp",)),
    (track(properties="p"), ("properties",)),
    (track(properties={"a": {"b": "\x00"}}), ("properties", "a", "b")),
    (track(event=None), ("event",)),
]


@given(
    good=st.integers(0, 30),
    position=st.data(),
    bad=st.sampled_from(_BAD_MESSAGES),
    native=st.booleans(),
)
def test_a_bad_message_is_pointed_at_among_good_ones(
    good: int, position: st.DataObject, bad: tuple[Any, tuple[str, ...]], native: bool
) -> None:
    index = position.draw(st.integers(0, good))
    messages: list[Any] = [track(messageId=f"m{n}") for n in range(good)]
    messages.insert(index, bad[0])
    key, parse = ("events", parse_native_batch) if native else ("batch", parse_segment_batch)
    parsed = parse(_body({key: messages}), workspace_id=WORKSPACE, received_at=RECEIVED)
    assert [problem.path for problem in parsed.problems] == [(key, index, *bad[1])]
    assert parsed.rejected_indexes == [index]
    assert [e.message_id for e in parsed.events] == [f"m{n}" for n in range(good)]


@pytest.mark.parametrize(
    ("kind", "member", "value"),
    [
        ("page", "traits", [1]),
        ("identify", "properties", "x"),
        ("alias", "context", 3),
        ("identify", "event", 5),
        ("track", "name", {"a": 1}),
        ("page", "groupId", {}),
        ("track", "previousId", [1]),
        ("alias", "groupId", True),
    ],
)
def test_members_a_type_does_not_keep_are_still_type_checked(
    kind: EventType, member: str, value: Any
) -> None:
    message = {"userId": "u", "previousId": "p", "event": "e", member: value}
    parsed = call(kind, message)
    assert parsed.events == []
    assert f"/{member}" in pointers(parsed)
