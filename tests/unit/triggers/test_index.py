from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import event as note
from hypothesis import given, settings
from hypothesis import strategies as st

from campaignflow.domain.cel import CelContext, CelEvaluationError, CompiledExpression, environment
from campaignflow.triggers.index import IndexedTrigger, MatchResult, TriggerIndex
from campaignflow.triggers.prefilter import Prefilter, plain

TRIGGER = environment(CelContext.TRIGGER)
NOW = datetime(2026, 3, 1, tzinfo=UTC)
CONDITIONS: list[str | None] = [
    None,
    'event.plan == "pro"',
    'event.plan == "pro" && event.total > 50',
    'event.plan in ["pro", "team"] && contact.tier == 1',
    'event.plan in ["team", "pro", 1]',
    '"team" == event.plan && (event.total == 50 || event.flag)',
    "event.total == 50 && event.flag == true",
    'event.total == 50.0 && event.plan != "free"',
    "event.flag == 1 && event.plan == null",
    "contact.tier == 1 && event.total / event.zero > 1",  # errors when zero is 0 or missing
    "event.plan",  # not a boolean unless the plan is one
    'event.total > 10 || event.plan == "pro"',
    "event.items.exists(i, i == 1) && event.big == 9007199254740993",
    "event.big == 9007199254740992.0 && now > timestamp('2026-01-01T00:00:00Z')",
    # exact: decided without CEL
    'event.plan == "pro" && event.total >= 50',
    'event.plan in ["pro", true, 1] && 50.5 > event.total && has(contact.tier)',
    "event.flag == true && event.total != 50",
    'event.flag != false && event.plan > "p" && contact.tier <= 1u',
    "has(event.plan) && event.plan != null && event.big > 9007199254740991",
    'contact.tier == null && "50" != event.total',
]
COMPILED = {source: TRIGGER.compile(source) for source in CONDITIONS if source is not None}
NAMES = ["signup", "order"]


def trigger(workspace_id: str, name: str, source: str | None, value: int) -> IndexedTrigger[int]:
    condition = None if source is None else COMPILED.get(source) or TRIGGER.compile(source)
    return IndexedTrigger.of(workspace_id, name, condition, value)


def variables(event: dict[str, Any], contact: object = None) -> dict[str, object]:
    return {"event": event, "contact": contact, "now": NOW}


def naive_match(
    triggers: list[IndexedTrigger[int]], workspace_id: str, name: str, values: dict[str, object]
) -> list[int]:
    matched = []
    for candidate in triggers:
        if (candidate.workspace_id, candidate.event_name) != (workspace_id, name):
            continue
        try:
            holds = candidate.condition is None or candidate.condition.evaluate_bool(values)
        except CelEvaluationError:
            holds = False
        if holds:
            matched.append(candidate.value)
    return matched


SCALARS = ["pro", "team", "free", None, True, False, 0, 1, 1.0, 50, 50.0, 51, "50", 2**53 + 1]
ODD = ["pro\x00", 2**64]  # CEL reads "pro", and refuses the whole event
PLANS = ["pro", "team", "free", None, 1, True, ["pro"], {"pro": 1}, *ODD]
FIELDS = {  # each value likely to satisfy some condition, half of the time
    "plan": st.one_of(st.just("pro"), st.sampled_from(PLANS)),
    "total": st.one_of(st.sampled_from([49, 50, 50.0, 50.5]), st.sampled_from(SCALARS)),
    "flag": st.one_of(st.just(True), st.sampled_from(SCALARS)),
    "zero": st.sampled_from([0, 1]),
    "items": st.sampled_from([[1], [2], "x"]),
    "big": st.sampled_from([2**53 + 1, float(2**53), 2**53, 2**53 - 1, float("nan"), 2**64]),
}


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly complete events, so that conditions hold often; some keys missing."""
    event = draw(st.fixed_dictionaries(FIELDS))
    for key in draw(st.lists(st.sampled_from(sorted(FIELDS)), max_size=3)):
        event.pop(key, None)
    return event


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[IndexedTrigger[int]], str, str]:
    """Triggers, and the workspace and name of an event: usually those of some trigger."""
    spec = st.tuples(
        st.sampled_from(["w1", "w2"]), st.sampled_from(NAMES), st.sampled_from(CONDITIONS)
    )
    specs = draw(st.lists(spec, min_size=1, max_size=60))
    workspace_id, name, _ = draw(st.sampled_from(specs))
    if draw(st.integers(0, 9)) == 0:
        workspace_id, name = draw(st.sampled_from([("w3", "order"), ("w1", "click")]))
    triggers = [trigger(*spec, value=position) for position, spec in enumerate(specs)]
    return triggers, workspace_id, name


@settings(max_examples=300, deadline=None)
@given(
    scenario=scenarios(),
    event=events(),
    contact=st.one_of(
        st.none(),
        st.fixed_dictionaries({}, optional={"tier": st.sampled_from([1, *SCALARS])}),
    ),
)
def test_matches_what_evaluating_every_trigger_matches(
    scenario: tuple[list[IndexedTrigger[int]], str, str], event: dict[str, Any], contact: object
) -> None:
    triggers, workspace_id, name = scenario
    values = variables(event, contact)
    result = TriggerIndex(triggers).match(workspace_id, name, values)
    assert result.matched == naive_match(triggers, workspace_id, name, values)
    bucket = [t for t in triggers if (t.workspace_id, t.event_name) == (workspace_id, name)]
    assert result.errors <= result.evaluated <= sum(t.condition is not None for t in bucket)
    if plain(values):
        assert result.evaluated <= sum(not t.prefilter.exact for t in bucket if t.condition)
    exact = {t.value for t in bucket if t.prefilter.exact}
    note("not plain" if not plain(values) else f"exact matches: {bool(exact & {*result.matched})}")


def test_only_candidates_are_evaluated() -> None:
    triggers = [
        trigger("w1", "order", f'event.plan == "p{i % 100}" && event.total + 0 > {i}', i)
        for i in range(300)
    ]
    result = TriggerIndex(triggers).match("w1", "order", variables({"plan": "p7", "total": 150}))
    assert result == MatchResult([7, 107], evaluated=3, errors=0)


def test_exact_conditions_are_decided_without_cel() -> None:
    triggers = [
        trigger("w1", "order", f'event.plan == "p{i % 100}" && event.total > {i}', i)
        for i in range(300)
    ]
    index = TriggerIndex(triggers)
    result = index.match("w1", "order", variables({"plan": "p7", "total": 150}))
    assert result == MatchResult([7, 107], evaluated=0, errors=0)
    result = index.match("w1", "order", variables({"plan": "p7", "total": "150"}))
    assert result == MatchResult([], evaluated=0, errors=0)  # CEL would fail: no match either


def test_every_requirement_is_checked_before_cel() -> None:
    source = 'event.plan == "pro" && event.total == 5 && size(event.plan) == 3'
    index = TriggerIndex([trigger("w1", "order", source, 0)])
    for event in ({"plan": "pro", "total": 6}, {"plan": "pro"}, {"total": 5}):
        assert index.match("w1", "order", variables(event)) == MatchResult([])
    result = index.match("w1", "order", variables({"plan": "pro", "total": 5}))
    assert result == MatchResult([0], evaluated=1)


def test_cel_decides_every_trigger_when_it_reads_the_event_differently() -> None:
    index = TriggerIndex([trigger("w1", "order", 'event.plan == "pro"', 0)])
    result = index.match("w1", "order", variables({"plan": "pro\x00tect"}))  # "pro" to CEL
    assert result == MatchResult([0], evaluated=1)
    result = index.match("w1", "order", variables({"plan": "pro", "total": 2**64}))
    assert result == MatchResult([], evaluated=1, errors=1)


def test_evaluation_errors_are_counted_not_raised() -> None:
    index = TriggerIndex(
        [
            trigger("w1", "order", "contact.tier == 1 && event.total / event.zero > 1", 0),
            trigger("w1", "order", "event.plan", 1),
            trigger("w1", "order", None, 2),
        ]
    )
    result = index.match(
        "w1", "order", variables({"total": 5, "zero": 0, "plan": "x"}, {"tier": 1})
    )
    assert result == MatchResult([2], evaluated=2, errors=2)


def test_workspaces_and_names_are_isolated() -> None:
    index = TriggerIndex(
        [
            trigger("w1", "signup", None, 0),
            trigger("w2", "signup", None, 1),
            trigger("w2", "order", None, 2),
        ]
    )
    assert index.names("w2") == {"signup", "order"}
    assert index.names("w3") == frozenset()
    assert index.match("w1", "signup", variables({})).matched == [0]
    assert index.match("w2", "order", variables({})).matched == [2]
    assert index.match("w1", "order", variables({})) == MatchResult([])


def test_matches_keep_the_order_triggers_were_given() -> None:
    sources = ['event.plan == "pro"', None, "event.total == 50", 'event.plan in ["pro"]', None]
    index = TriggerIndex([trigger("w1", "order", source, i) for i, source in enumerate(sources)])
    result = index.match("w1", "order", variables({"plan": "pro", "total": 50.0}))
    assert result.matched == list(range(len(sources)))


def test_unhashable_event_values_find_no_candidates_and_do_not_crash() -> None:
    index = TriggerIndex([trigger("w1", "order", 'event.plan == "pro"', 0)])
    for plan in (["pro"], {"pro": 1}):
        assert index.match("w1", "order", variables({"plan": plan})) == MatchResult([])


def test_a_given_prefilter_is_used_as_is() -> None:
    condition: CompiledExpression = COMPILED['event.plan == "pro"']
    unfiltered = IndexedTrigger("w1", "order", condition, Prefilter(()), 0)
    result = TriggerIndex([unfiltered]).match("w1", "order", variables({"plan": "free"}))
    assert result == MatchResult([], evaluated=1, errors=0)
