from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from campaignflow.domain.cel import CelCompileError, CelContext, CelEvaluationError, environment
from campaignflow.triggers.prefilter import Prefilter, Requirement, extract

TRIGGER = environment(CelContext.TRIGGER)

# CEL spellings of a few paths, each with the keys it reads.
PATHS: dict[str, tuple[str, tuple[str, ...]]] = {
    "event.a": ("event", ("a",)),
    'event["a"]': ("event", ("a",)),
    "event.b": ("event", ("b",)),
    "event.c.d": ("event", ("c", "d")),
    "event['c'][\"d\"]": ("event", ("c", "d")),
    "contact.tier": ("contact", ("tier",)),
}
# Numbers where CEL's int-to-double comparison and Python's exact one part ways, and a few others.
INTEGERS = [0, 1, -7, 2**53 + 1, 2**63 - 1]
UNSIGNED = [1, 2**53 + 1, 2**64 - 1]
DOUBLES = [-0.0, 1.0, 0.5, float(2**53), float(2**63), 1e300]
ALPHABET = "a&|\"'\\()\n é😀"


Found = tuple[str, tuple[str, ...], frozenset[Any]]


def req(dotted: str, *values: object) -> Found:
    root, *keys = dotted.split(".")
    return root, tuple(keys), frozenset(values)


def requirements(source: str) -> set[Found]:
    return {(r.root, r.path, r.values) for r in extract(source).requirements}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('event.plan == "pro" && event.total > 50', {req("event.plan", "pro")}),
        ('"pro" == contact.plan', {req("contact.plan", "pro")}),
        ("event.a in [1, 'x', 2u, -2.5, true, null,]", {req("event.a", 1, "x", 2, -2.5, None)}),
        ("event.a in []", {req("event.a")}),
        ("((event.a == 1)) && (event.b == false)", {req("event.a", 1), req("event.b", False)}),
        (
            "event[\"p q\"]['r'] == 0x10 && contact == null",
            {req("event.p q.r", 16), req("contact", None)},
        ),
        (
            "event.a == \"x && y\" && event.b == '('",
            {req("event.a", "x && y"), req("event.b", "(")},
        ),
        (r'event.a == "say \"&&\" \\"', {req("event.a", 'say "&&" \\')}),
        (r"event.a == '\x41\101\u00e9\U0001F600\n\`'", {req("event.a", "AAé😀\n`")}),
        ("(event.a == 1 || event.b == 2) && event.c == 3", {req("event.c", 3)}),
        ("event.a.exists(x, x == 1 && x != 2) && event.c == 3", {req("event.c", 3)}),
        (
            'event.a == r"x" && event.b == """y""" && event.c == b"z" && event.d == 4',
            {req("event.d", 4)},
        ),
    ],
)
def test_extracts_the_equalities_of_the_top_level_conjunction(
    source: str, expected: set[Found]
) -> None:
    TRIGGER.compile(source)
    assert requirements(source) == expected


@pytest.mark.parametrize(
    "source",
    [
        "event.a == 1 || event.b == 2",
        "event.a == 1 && event.b == 2 || event.c == 3",
        "event.a == 1 && event.b == 2 ? true : false",
        "event.a == 1 // ( a comment hides\n || event.b == 2 // )\n && event.c == 3",
        "event.a != 1 && !(event.b == 2) && event.c > 3 && has(event.d)",
        "(event.a) == (1) && event.a == 1 + 1 && event.a == 1 == true && event.a in [1] + [2]",
        "event.a == 9007199254740993 && event.b == 9007199254740992.0 && event.c == 1e300",
        "now == now && size(event.a) == 1 && event.a + 1 == 2 && [event.a] == [1]",
        "event.a.size() == 1 && 1 == event.a.size() && event.a in event.b && 1 in [event.a]",
    ],
)
def test_extracts_nothing_that_is_not_necessary(source: str) -> None:
    TRIGGER.compile(source)
    assert requirements(source) == set()


@pytest.mark.parametrize(
    "source", ["", "event.a == 'unterminated", "event.a == `b`", "(((", ")&&("]
)
def test_unreadable_sources_give_an_empty_prefilter(source: str) -> None:
    assert extract(source) == Prefilter(())


def test_admits_requires_every_path_present_with_an_allowed_value() -> None:
    prefilter = Prefilter(
        (
            Requirement("event", ("plan",), frozenset({"pro", "team"})),
            Requirement("contact", ("age",), frozenset({18})),
        )
    )
    assert prefilter.admits({"event": {"plan": "team"}, "contact": {"age": 18.0}})
    assert not prefilter.admits({"event": {"plan": "free"}, "contact": {"age": 18}})
    assert not prefilter.admits({"event": {"plan": "pro"}, "contact": {}})
    assert not prefilter.admits({"event": {"plan": ["pro"]}, "contact": {"age": 18}})
    assert not prefilter.admits({"event": "pro", "contact": None})
    assert Prefilter(()).admits({})


# --- soundness: whenever CEL says true, the prefilter admits -----------------------------------


SCALAR_LITERALS = [
    *(str(n) for n in INTEGERS),
    *(f"{n}u" for n in UNSIGNED),
    *(repr(x) for x in DOUBLES),
    *("true", "false", "null", "'1'"),
]
EVENT_SCALARS: list[object] = [
    *INTEGERS,
    *UNSIGNED,
    *DOUBLES,
    *(float(n) for n in [*INTEGERS, *UNSIGNED]),
    *(int(x) + 1 for x in DOUBLES if abs(x) < 1e300),
    *(True, False, None, "1", b"1", float("nan"), float("inf"), 2**64, [1], {"d": 1}),
]


@pytest.mark.parametrize("literal", SCALAR_LITERALS)
def test_every_scalar_that_cel_finds_equal_is_admitted(literal: str) -> None:
    sources = [f"event.a == {literal}", f"{literal} == event.a", f"event.a in [{literal}]"]
    for source in sources:
        expression, prefilter = TRIGGER.compile(source), extract(source)
        assert prefilter.requirements or abs(float(literal.rstrip("u"))) >= 2**53
        for value in EVENT_SCALARS:
            variables = {"event": {"a": value}}
            try:
                holds = expression.evaluate_bool(variables)
            except CelEvaluationError:
                holds = False
            assert not holds or prefilter.admits(variables), (source, value)


@st.composite
def string_literals(draw: st.DrawFn) -> tuple[str, object]:
    text = draw(st.text(ALPHABET, max_size=3))
    quote = draw(st.sampled_from("\"'"))
    if draw(st.integers(0, 5)) == 0 and not set(text) & {quote, "\\", "\n"}:
        prefix = draw(st.sampled_from(["r", "R", "b"]))
        return prefix + quote + text + quote, text.encode() if prefix == "b" else text
    body = "".join(draw(st.sampled_from(_spellings(char, quote))) for char in text)
    return quote + body + quote, text


def _spellings(char: str, quote: str) -> list[str]:
    code = ord(char)
    found = [f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08X}", f"\\U{code:08x}"]
    found += [f"\\x{code:02x}", f"\\X{code:02X}", f"\\{code:03o}"] if code < 0x100 else []
    found += {"\n": ["\\n"], "\\": ["\\\\"], "'": ["\\'"], '"': ['\\"']}.get(char, [])
    return found if char in (quote, "\\", "\n") else [*found, char]


def number_literals() -> st.SearchStrategy[tuple[str, object]]:
    return st.one_of(
        st.sampled_from(INTEGERS).map(lambda n: (str(n), n)),
        st.sampled_from([n for n in INTEGERS if n >= 0]).map(lambda n: (hex(n), n)),
        st.sampled_from(UNSIGNED).map(lambda n: (f"{n}u", n)),
        st.sampled_from(DOUBLES).map(lambda x: (repr(x), x)),
        st.sampled_from([("5e-1", 0.5), (".5", 0.5), ("1e0", 1.0), ("- 7", -7), ("-0x7", -7)]),
    )


LITERALS = st.one_of(
    string_literals(),
    number_literals(),
    st.sampled_from([("true", True), ("false", False), ("null", None)]),
)


Hinted = tuple[str, list[tuple[str, object]]]  # a source and (path, value) pairs making it true


@st.composite
def equalities(draw: st.DrawFn) -> Hinted:
    path, (literal, value) = draw(st.sampled_from(sorted(PATHS))), draw(LITERALS)
    kind = draw(st.integers(0, 3))
    if kind == 0:
        text = f"{literal} == {path}"
    elif kind == 1:
        more = draw(st.lists(LITERALS, max_size=2))
        text = f"{path} in [{', '.join([literal, *(m[0] for m in more)])}]"
    else:
        text = f"{path} == {literal}"
    depth = draw(st.integers(0, 2))
    return "(" * depth + text + ")" * depth, [(path, value)]


@st.composite
def conjuncts(draw: st.DrawFn) -> Hinted:
    kind = draw(st.integers(0, 5))
    if kind == 0:
        (left, _), (right, hints) = draw(equalities()), draw(equalities())
        return f"(!({left}) || {right})", hints
    if kind == 1:
        return draw(st.sampled_from(["true", "has(event.a)", 'size("&&||") == 4'])), []
    return draw(equalities())


@st.composite
def expressions(draw: st.DrawFn) -> Hinted:
    """A conjunction, sometimes under a disjunction or a conditional that makes it unnecessary."""
    parts = draw(st.lists(conjuncts(), min_size=1, max_size=4))
    joiner = draw(st.sampled_from([" && ", "&&", " &&\n ", " && // ( || ?\n"]))
    source = joiner.join(f"({text})" if draw(st.booleans()) else text for text, _ in parts)
    hints = [pair for _, pairs in parts for pair in pairs]
    alternative, more = draw(equalities())
    shapes = [
        source,
        f"{source} || {alternative}",
        f"{alternative} ? true : {source}",
        f"{source} // (\n || {alternative} // )\n",
    ]
    shape = draw(st.sampled_from(range(len(shapes))))
    return shapes[shape], hints + (more if shape else [])


def _variants(value: object) -> list[object]:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return [value, [value], {"d": value}]
    found: list[object] = [value, float(value), bool(value)]
    if float(value).is_integer() and abs(value) < 1e300:
        found += [int(value), int(value) + 1]
    return found


@st.composite
def variables(draw: st.DrawFn, hints: list[tuple[str, object]]) -> dict[str, Any]:
    """Event and contact values, often set to what the expression compares against."""
    scalars = st.one_of(
        st.sampled_from([*INTEGERS, *UNSIGNED, *DOUBLES, True, False, None, float("nan")]),
        st.text(ALPHABET, max_size=3),
    )
    values = st.one_of(
        scalars, st.lists(scalars, max_size=2), st.fixed_dictionaries({"d": scalars})
    )
    event = draw(st.dictionaries(st.sampled_from("abc"), values, max_size=3))
    contact = draw(st.one_of(st.none(), st.dictionaries(st.just("tier"), values)))
    variables: dict[str, Any] = {"event": event, "contact": contact}
    for path, value in hints:
        if draw(st.integers(0, 4)) > 0:
            _assign(variables, PATHS[path], draw(st.sampled_from(_variants(value))))
    return variables


def _assign(variables: dict[str, Any], path: tuple[str, tuple[str, ...]], value: object) -> None:
    root, keys = path
    if not isinstance(variables[root], dict):
        variables[root] = {}
    target = variables[root]
    for key in keys[:-1]:
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    target[keys[-1]] = value


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_cel_true_implies_admitted(data: st.DataObject) -> None:
    source, hints = data.draw(expressions())
    try:
        expression = TRIGGER.compile(source)
    except CelCompileError:
        assume(False)
    values = data.draw(variables(hints))
    try:
        holds = expression.evaluate_bool(values)
    except CelEvaluationError:
        holds = False
    event("cel true" if holds else "cel false")
    assert not holds or extract(source).admits(values), extract(source)


@given(literal=string_literals())
def test_string_literals_decode_to_what_cel_compares(literal: tuple[str, object]) -> None:
    text, value = literal
    source = f"event.a == {text}"
    expression = TRIGGER.compile(source)
    assert expression.evaluate_bool({"event": {"a": value}})
    found = extract(source).requirements
    assert found == () or found[0].values == frozenset({value})
    assert found != () or text[0] in "rRb"
