from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from campaignflow.domain.cel import (
    CelCompileError,
    CelContext,
    CelEvaluationError,
    CompiledExpression,
    environment,
)
from campaignflow.triggers.prefilter import (
    Comparison,
    Inequality,
    Prefilter,
    Presence,
    Requirement,
    extract,
    key,
    plain,
)

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
WHERE = {**PATHS, "event.c": ("event", ("c",))}  # and has()'s dotted paths
# Numbers where CEL's int-to-double comparison and Python's exact one part ways, and a few others.
INTEGERS = [0, 1, -7, 2**53 + 1, 2**63 - 1]
UNSIGNED = [1, 2**53 + 1, 2**64 - 1]
DOUBLES = [-0.0, 1.0, 0.5, float(2**53), float(2**63), 1e300]
ALPHABET = "a&|\"'\\()\n é😀"


Found = tuple[str, tuple[str, ...], frozenset[Any]]


def req(dotted: str, *values: object) -> Found:
    root, *keys = dotted.split(".")
    return root, tuple(keys), frozenset(map(key, values))


def holds(expression: CompiledExpression, variables: dict[str, Any]) -> bool:
    """CEL's decision, as the index takes it: an evaluation error is no match."""
    try:
        return expression.evaluate_bool(variables)
    except CelEvaluationError:
        return False


def requirements(source: str) -> set[Found]:
    return {(r.root, r.path, r.values) for r in extract(source).requirements}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('event.plan == "pro" && event.total > 50', {req("event.plan", "pro")}),
        ('"pro" == contact.plan', {req("contact.plan", "pro")}),
        (
            "event.a in [1, 'x', 2u, -2.5, true, null,]",
            {req("event.a", 1, "x", 2, -2.5, True, None)},
        ),
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
        "!(event.b == 2) && !has(event.d) && event.c > true && event.c < null && -event.c < 1",
        "(event.a) == (1) && event.a == 1 + 1 && event.a == 1 == true && event.a in [1] + [2]",
        "event.a == 9007199254740993 && event.b == 9007199254740992.0 && event.c == 1e300",
        "now == now && size(event.a) == 1 && event.a + 1 == 2 && [event.a] == [1]",
        "event.a.size() == 1 && 1 == event.a.size() && event.a in event.b && 1 in [event.a]",
    ],
)
def test_extracts_nothing_that_is_not_necessary(source: str) -> None:
    TRIGGER.compile(source)
    assert extract(source) == Prefilter()


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


def a(dotted: str) -> tuple[str, tuple[str, ...]]:
    root, *keys = dotted.split(".")
    return root, tuple(keys)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('event.a != "x"', [Inequality(*a("event.a"), "x")]),
        ("null != event['a']", [Inequality(*a("event.a"), None)]),
        ("event.a != true", [Inequality(*a("event.a"), key(True))]),
        (
            "event.a < 5 && 5.5 >= event.b && event['c'].d > 'm' && -2 <= contact.tier",
            [
                Comparison(*a("event.a"), "<", 5),
                Comparison(*a("event.b"), "<=", 5.5),
                Comparison(*a("event.c.d"), ">", "m"),
                Comparison(*a("contact.tier"), ">=", -2),
            ],
        ),
        (
            "0x10u > event.a && (event.b <= -.5)",
            [Comparison(*a("event.a"), "<", 16), Comparison(*a("event.b"), "<=", -0.5)],
        ),
        (
            "has(event.c.d) && has(contact.tier)",
            [Presence(*a("event.c.d")), Presence(*a("contact.tier"))],
        ),
    ],
)
def test_extracts_the_other_comparisons_of_the_top_level_conjunction(
    source: str, expected: list[object]
) -> None:
    TRIGGER.compile(source)
    prefilter = extract(source)
    assert list(prefilter.checks) == expected
    assert prefilter.exact


@pytest.mark.parametrize(
    ("source", "exact"),
    [
        (
            'event.a == 1 && event.b in ["x", null] && event.c < 2 && has(event.d) && 1 != event.e',
            True,
        ),
        ("(event.a == 1) && ((has(event.b)))", True),
        ("event.a == 1 && size(event.b) > 1", False),
        ("event.a < true && event.b == 1", False),
        ("event.a < 9007199254740993 && event.b == 1", False),
        ("event.a == r'x' && event.b == 1", False),
        ("event.a == 1 || event.b == 2", False),
        ("event.a == 1 && event.b", False),
        ("true && event.a == 1", False),
    ],
)
def test_exact_only_when_every_top_level_conjunct_is_kept(source: str, exact: bool) -> None:
    TRIGGER.compile(source)
    assert extract(source).exact is exact


ERROR = "error"
ABSENT = object()


@pytest.mark.parametrize(
    ("source", "value", "cel"),
    [
        ("event.a < 1.5", 1, True),  # int and double order by value
        ("event.a > 2", 2.5, True),
        ("event.a < -2", -2.5, True),
        ("event.a == 2", 2.0, True),  # and are equal by value
        ("event.a in [2u]", 2, True),  # so are int and uint
        ("event.a < 5u", -1, True),  # a negative int is below any uint
        ("event.a > -1", 2**64 - 1, True),  # a Python int above 2**63 is a CEL uint
        ("event.a > 9007199254740991", 2**53 + 1, True),
        ("event.a < 9007199254740991.0", float(2**53), False),
        ("event.a == 1", True, False),  # a bool equals no number
        ("event.a in [1, 1.0, 1u]", True, False),
        ("event.a == true", 1, False),
        ("event.a != 1", True, True),
        ("event.a < 2", True, ERROR),  # nor orders with one
        ("event.a >= 0", False, ERROR),
        ("event.a < 'b'", 1, ERROR),  # strings order only with strings
        ("event.a > 1", "2", ERROR),
        ("event.a < 'b'", "a", True),
        ("event.a < '\\u00e9'", "z", True),  # by code point, which is UTF-8's byte order
        ("event.a < '\\u00e9'", "\U0001f600", False),
        ("event.a > 'a'", "a ", True),
        ("event.a == 'x'", ["x"], False),  # a list or map equals no scalar
        ("event.a != 'x'", {"x": "x"}, True),
        ("event.a == '1'", 1, False),
        ("event.a != '1'", 1, True),  # equality across types is false, not an error
        ("event.a != 1", "1", True),
        ("event.a == null", None, True),
        ("event.a != null", None, False),
        ("event.a != null", 0, True),
        ("event.a < 1", None, ERROR),
        ("event.a != 1", ABSENT, ERROR),  # a missing key is an error, whatever the operator
        ("event.a == null", ABSENT, ERROR),
        ("event.a != 1", float("nan"), True),  # NaN equals nothing
        ("event.a == 1", float("nan"), False),
        ("event.a < 1", float("nan"), False),  # and orders with nothing
        ("event.a >= 1", float("nan"), False),
        ("event.a > 1u", float("inf"), True),
        ("event.a.b == 1", 1, ERROR),  # selecting from a non-map is an error
        ("has(event.a)", None, True),  # has() tests for the key
        ("has(event.a)", ABSENT, False),
        ("has(event.a.b)", ABSENT, ERROR),  # a missing map on the way is an error
        ("has(event.a.b)", {"c": 1}, False),
        ("has(event.a.b)", {"b": None}, True),
        ("has(event.a.b)", [1], ERROR),
        ("has(event.a.b)", "b", ERROR),
    ],
)
def test_conjuncts_decide_as_cel_does(source: str, value: object, cel: object) -> None:
    variables = {"event": {} if value is ABSENT else {"a": value}, "contact": None}
    expression = TRIGGER.compile(source)
    try:
        found: object = expression.evaluate_bool(variables)
    except CelEvaluationError:
        found = ERROR
    assert found == cel
    prefilter = extract(source)
    assert prefilter.exact
    assert plain(variables)
    assert prefilter.admits(variables) is (cel is True)


@pytest.mark.parametrize(
    ("event", "source", "is_plain"),
    [
        ({"a": 1, "b": [2**64 - 1, -(2**63), 0.5, float("nan"), None]}, "event.a == 1", True),
        ({"a": "é😀", "b": {"c": ["\\u0000"]}}, "event.a == 'é😀'", True),
        ({"a": "a\x00b"}, "event.a == 'a'", False),  # CEL cuts the string at the NUL
        ({"a": 1, "a\x00b": 2}, "event.a == 1", False),  # and a key: here, a duplicate key
        ({"a": 1, "b": 2**64}, "event.a == 1", False),  # CEL refuses the whole event
        ({"a": 1, "b": -(2**63) - 1}, "event.a == 1", False),
        ({"a": 1, "b": ["\ud800"]}, "event.a == 1", False),
    ],
)
def test_plain_variables_are_those_cel_reads_as_python_does(
    event: dict[str, object], source: str, is_plain: bool
) -> None:
    variables = {"event": event, "contact": None}
    assert plain(variables) is is_plain
    decided = extract(source).admits(variables)
    assert (decided is holds(TRIGGER.compile(source), variables)) is is_plain


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


SCALARS = st.one_of(
    st.sampled_from([*INTEGERS, *UNSIGNED, *DOUBLES, True, False, None, float("nan")]),
    st.text(ALPHABET, max_size=3),
)


@st.composite
def variables(
    draw: st.DrawFn,
    hints: list[tuple[str, object]],
    nearby: Callable[[object], list[object]] = _variants,
    scalars: st.SearchStrategy[object] = SCALARS,
) -> dict[str, Any]:
    """Event and contact values, often set to (values near) what the expression compares."""
    values = st.one_of(
        scalars, st.lists(scalars, max_size=2), st.fixed_dictionaries({"d": scalars})
    )
    event = draw(st.dictionaries(st.sampled_from("abc"), values, max_size=3))
    contact = draw(st.one_of(st.none(), st.dictionaries(st.just("tier"), values)))
    variables: dict[str, Any] = {"event": event, "contact": contact}
    for path, value in hints:
        if draw(st.integers(0, 4)) > 0:
            _assign(variables, WHERE[path], draw(st.sampled_from(nearby(value))))
    return variables


def _assign(variables: dict[str, Any], path: tuple[str, tuple[str, ...]], value: object) -> None:
    root, keys = path
    if not isinstance(variables[root], dict):
        variables[root] = {}
    target = variables[root]
    for name in keys[:-1]:
        if not isinstance(target.get(name), dict):
            target[name] = {}
        target = target[name]
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


# --- exactness: an exact prefilter decides as CEL does -----------------------------------------


MIRRORED = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
EDGES: list[object] = [
    *(0, 1, -7, 2**53 - 1, 2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, -(2**63)),
    *(0.5, -0.0, 1.0, float(2**53), float(2**53 + 2), 1e300, float("nan"), float("inf")),
    *(-float("inf"), True, False, None, "", "a", "é", "😀", [], {}),
]


DECIDABLE_NUMBERS = [0, 1, -7, 0.5, -0.0, 2**53 - 1, -(2**53 - 1), float(2**53 - 1)]
USUALLY_DECIDABLE = st.one_of(
    LITERALS,
    st.sampled_from(DECIDABLE_NUMBERS).map(lambda n: (repr(n), n)),
    st.sampled_from([n for n in DECIDABLE_NUMBERS if n > 0]).map(lambda n: (f"{int(n)}u", int(n))),
    string_literals().filter(lambda literal: literal[0][0] in "\"'"),
)


@st.composite
def relations(draw: st.DrawFn) -> tuple[str, list[tuple[str, object]], bool]:
    """A conjunct of a form the prefilter reads, hints making it true, and whether it is exact."""
    symbol = draw(st.sampled_from(["==", "!=", "in", "has", "<", "<=", ">", ">="]))
    if symbol == "has":
        dotted = draw(st.sampled_from(["event.a", "event.c", "event.c.d", "contact.tier"]))
        return f"has({dotted})", [(dotted, draw(st.sampled_from(EDGES)))], True
    path, (literal, value) = draw(st.sampled_from(sorted(PATHS))), draw(USUALLY_DECIDABLE)
    more = draw(st.lists(USUALLY_DECIDABLE, max_size=2)) if symbol == "in" else []
    literals = [(literal, value), *more]
    if symbol == "in":
        text = f"{path} in [{', '.join(text for text, _ in literals)}]"
    elif draw(st.booleans()):
        text = f"{literal} {MIRRORED[symbol]} {path}"
    else:
        text = f"{path} {symbol} {literal}"
    exact = all(_decidable(text, value) for text, value in literals)
    ordered = symbol in ("==", "!=", "in") or type(value) in (int, float, str)
    return text, [(path, value) for _, value in literals], exact and ordered


def _decidable(literal: str, value: object) -> bool:
    if isinstance(value, str | bytes):
        return literal[0] in "\"'"  # not raw, not bytes
    return not isinstance(value, int | float) or abs(value) < 2**53


def _nearby(value: object) -> list[object]:
    """``value`` (more often than not), values just beside it, and values of other types."""
    found: list[object] = [*[value] * 6, None, True, False, "1", 1, [value], {"d": value}]
    if isinstance(value, bool):
        return [*found, not value, float(value)]
    if isinstance(value, int | float):
        found += [-value, value + 1, value - 1, value + 0.5, value - 0.5, str(value)]
        return [*found, float(value), int(value)] if abs(value) < 1e300 else found
    if isinstance(value, str):
        return [*found, value + "a", value[:-1], value + "\x01", value.upper()]
    return found


@settings(max_examples=1000, deadline=None)
@given(data=st.data())
def test_an_exact_prefilter_decides_as_cel_does(data: st.DataObject) -> None:
    parts = data.draw(st.lists(relations(), min_size=1, max_size=3))
    source = " && ".join(text for text, _, _ in parts)
    try:
        expression = TRIGGER.compile(source)
    except CelCompileError:
        assume(False)
    prefilter = extract(source)
    assert prefilter.exact is all(exact for _, _, exact in parts), source
    hints = [hint for _, pairs, _ in parts for hint in pairs]
    values = data.draw(variables(hints, _nearby, st.sampled_from(EDGES)))
    cel = holds(expression, values)
    event(f"{'exact' if prefilter.exact else 'not exact'}, cel {cel}")
    assume(plain(values))  # bytes, from a bytes literal
    if prefilter.exact:
        assert prefilter.admits(values) is cel, (source, values)
    else:
        assert not cel or prefilter.admits(values), (source, values)
