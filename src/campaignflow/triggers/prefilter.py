"""Conditions read from a trigger's CEL source, checked before CEL runs, and often instead of it.

:func:`extract` splits the top-level ``&&`` of an expression and keeps the conjuncts it fully
understands, on a PATH that starts at ``event`` or ``contact``: ``PATH == LITERAL`` and
``PATH in [LITERAL, ...]`` (:class:`Requirement`, which the index files triggers by), and
``PATH != LITERAL``, ``PATH < LITERAL`` (or ``<=``, ``>``, ``>=``, with a number or a string) and
``has(PATH)`` (a :data:`Check`); a literal may come first. Numeric literals are ints, uints and
doubles below 2**53 in magnitude. Everything else stays with CEL.

Each kept conjunct is decided as cel-cpp decides it, an evaluation error (a missing key, an
ordering across types) reading as false, and CEL's ``&&`` is true only when every conjunct is. So
:meth:`Prefilter.admits` is false whenever CEL cannot be true (soundness), and when every top-level
conjunct was kept (``exact``) it is true exactly when CEL is. The semantics, which the tests check
against cel-cpp: equality is heterogeneous (numbers are equal by value across int, uint and double;
a bool, a string or null equals only its own kind; ``!=`` is its negation, so ``"1" != 1``);
numbers order by value across int, uint and double, strings by code point, anything else is an
error; NaN is unequal and unordered. CEL compares an int with a double as doubles, which for
literals below 2**53 gives the exact comparison Python makes.

Both guarantees hold for :func:`plain` variables, which CEL reads as Python does; the index hands
other variables to CEL whole.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import orjson

Scalar = str | int | float | bool | None
ROOTS = frozenset({"event", "contact"})
_EXACT_LIMIT = 2**53  # every int below it in magnitude is exactly a double
_STRICT_JSON = (  # refuse subclasses and the like, which cel_expr_python refuses too
    orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
)
_ESCAPED_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")  # \u0000 after no or paired backslashes
_KEYWORDS: Mapping[str, Scalar] = {"true": True, "false": False, "null": None}
_NUMBERS = (int, float)
_ORDER_KINDS: Mapping[type, tuple[type, ...]] = {int: _NUMBERS, float: _NUMBERS, str: (str,)}
_ORDERINGS: Mapping[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_MIRRORED = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_OPEN, _CLOSE = frozenset("([{"), frozenset(")]}")
_MAPPINGS = (dict, Mapping)  # dict first: the common case, checked far faster than the ABC
_TOKEN = re.compile(
    r"""
    (?P<skip>[ \t\n\r\f]+|//[^\n]*)
    |(?P<raw>[bB]?[rR](?:\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?'''|"[^"\n\r]*"|'[^'\n\r]*'))
    |(?P<long>[bB]?(?:\"\"\"(?:\\[\s\S]|[^\\])*?\"\"\"|'''(?:\\[\s\S]|[^\\])*?'''))
    |(?P<bytes>[bB](?:"(?:\\.|[^"\\\n\r])*"|'(?:\\.|[^'\\\n\r])*'))
    |(?P<string>"(?:\\.|[^"\\\n\r])*"|'(?:\\.|[^'\\\n\r])*')
    |(?P<double>\d+\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\.\d+(?:[eE][+-]?\d+)?)
    |(?P<uint>(?:0[xX][0-9a-fA-F]+|\d+)[uU])
    |(?P<int>0[xX][0-9a-fA-F]+|\d+)
    |(?P<ident>[_a-zA-Z][_a-zA-Z0-9]*)
    |(?P<op>&&|\|\||==|!=|<=|>=|[-+*/%<>!?:.,()\[\]{}])
    """,
    re.VERBOSE | re.ASCII,
)
_ESCAPE = re.compile(
    r"\\(?:(?P<char>[abfnrtv\\'\"`?])|[xX](?P<hex>[0-9a-fA-F]{2})"
    r"|u(?P<u4>[0-9a-fA-F]{4})|U(?P<u8>[0-9a-fA-F]{8})|(?P<oct>[0-3][0-7]{2})|(?P<bad>.?))",
    re.DOTALL,
)
_SIMPLE_ESCAPES = dict(zip("abfnrtv\\'\"`?", "\a\b\f\n\r\t\v\\'\"`?", strict=True))


class _Marker(Enum):
    MISSING = "missing"
    UNUSABLE = "unusable"


class _Flag(Enum):
    """A bool as a lookup key: CEL never finds ``true`` equal to ``1``, Python does."""

    FALSE = False
    TRUE = True


MISSING = _Marker.MISSING
"""What :func:`resolve` returns when a path does not exist."""
_UNUSABLE = _Marker.UNUSABLE
_FLAGS: Mapping[object, _Flag] = {False: _Flag.FALSE, True: _Flag.TRUE}


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    value: object = None


@dataclass(frozen=True, slots=True)
class Requirement:
    """The value at ``root.path`` exists and equals one of ``values`` (given as :func:`key`)."""

    root: str
    path: tuple[str, ...]
    values: frozenset[object]

    def admits(self, variables: Mapping[str, object]) -> bool:
        try:
            return key(resolve(variables, self.root, self.path)) in self.values
        except TypeError:  # unhashable: a list or map, which CEL never equals to a scalar
            return False


@dataclass(frozen=True, slots=True)
class Inequality:
    """``root.path != value``: the value exists and differs from ``value`` (a :func:`key`)."""

    root: str
    path: tuple[str, ...]
    value: object

    def admits(self, variables: Mapping[str, object]) -> bool:
        found = resolve(variables, self.root, self.path)
        return found is not MISSING and key(found) != self.value


@dataclass(frozen=True, slots=True)
class Comparison:
    """``root.path <operator> value``: both numbers or both strings, else an error in CEL."""

    root: str
    path: tuple[str, ...]
    operator: str
    value: int | float | str

    def admits(self, variables: Mapping[str, object]) -> bool:
        found = resolve(variables, self.root, self.path)
        if type(found) not in _ORDER_KINDS[type(self.value)]:  # bool is no number here
            return False
        return _ORDERINGS[self.operator](found, self.value)


@dataclass(frozen=True, slots=True)
class Presence:
    """``has(root.path)``: the map at the path's parent has its last key; no map is an error."""

    root: str
    path: tuple[str, ...]

    def admits(self, variables: Mapping[str, object]) -> bool:
        parent = resolve(variables, self.root, self.path[:-1])
        return isinstance(parent, _MAPPINGS) and self.path[-1] in parent


Check = Inequality | Comparison | Presence


@dataclass(frozen=True, slots=True)
class Prefilter:
    """Conditions every event matching the expression meets; empty admits everything.

    ``exact`` when they are the whole expression: then they decide it without CEL.
    """

    requirements: tuple[Requirement, ...] = ()
    checks: tuple[Check, ...] = ()
    exact: bool = False

    def admits(self, variables: Mapping[str, object]) -> bool:
        """For :func:`plain` variables: false when CEL cannot evaluate the expression to true,
        and when ``exact``, true exactly when CEL does (an evaluation error being false)."""
        for requirement in self.requirements:
            if not requirement.admits(variables):
                return False
        return all(check.admits(variables) for check in self.checks)


def key(value: object) -> object:
    """``value`` as requirements hold it and the index looks it up: bools apart from numbers."""
    return _FLAGS[value] if type(value) is bool else value


def resolve(variables: Mapping[str, object], root: str, path: tuple[str, ...]) -> object:
    """The value at ``root.path`` through nested mappings, or :data:`MISSING`."""
    value = variables.get(root, MISSING)
    for name in path:
        if not isinstance(value, _MAPPINGS):
            return MISSING
        value = value.get(name, MISSING)
    return value


def plain(variables: Mapping[str, object]) -> bool:
    """Whether CEL reads the ``event`` and ``contact`` of ``variables`` as Python does.

    They hold JSON values, as :meth:`CompiledExpression.evaluate` requires (Python-only values
    that orjson writes too, such as tuples, are outside that contract). CEL reads JSON values as
    Python does, except an int beyond 64 bits or a string with a lone surrogate (the variable
    fails to convert, and so does every expression reading it) and a string with a NUL character
    (cel_expr_python cuts it there: ``"a\\x00b"`` is ``"a"``). orjson refuses the former and
    writes the NUL as ``\\u0000``.
    """
    try:
        encoded = orjson.dumps([variables.get(root) for root in ROOTS], option=_STRICT_JSON)
    except TypeError:  # also too deep, or not JSON at all: let CEL judge
        return False
    return b"\\u0000" not in encoded or _ESCAPED_NUL.search(encoded) is None


def extract(source: str) -> Prefilter:
    """The conditions readable from ``source``; none when its top level is not a conjunction."""
    tokens = _tokenize(source)
    conjuncts = _split_conjunction(tokens) if tokens is not None else []
    found = [_conjunct(_unwrap(conjunct)) for conjunct in conjuncts]
    return Prefilter(
        tuple(item for item in found if isinstance(item, Requirement)),
        tuple(item for item in found if isinstance(item, Check)),
        exact=bool(found) and all(item is not None for item in found),
    )


def _tokenize(source: str) -> list[_Token] | None:
    tokens: list[_Token] = []
    position = 0
    while position < len(source):
        match = _TOKEN.match(source, position)
        if match is None or match.lastgroup is None:
            return None  # a character CEL may read differently: give up on the whole source
        position = match.end()
        if match.lastgroup != "skip":
            tokens.append(
                _Token(match.lastgroup, match[0], _literal_value(match.lastgroup, match[0]))
            )
    return tokens


def _literal_value(kind: str, text: str) -> object:
    if kind == "string":
        return _unescape(text[1:-1])
    if kind == "double":
        value: float | int = float(text)
    elif kind in ("int", "uint"):
        value = int(text.rstrip("uU"), 16 if text[:2] in ("0x", "0X") else 10)
    else:
        return _UNUSABLE  # raw, triple-quoted and bytes literals are left to CEL
    return value if abs(value) < _EXACT_LIMIT else _UNUSABLE


def _unescape(body: str) -> str | _Marker:
    decoded: list[str] = []
    position = 0
    for match in _ESCAPE.finditer(body):
        code = _escaped_code(match)
        if code is None or 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
            return _UNUSABLE
        decoded += [body[position : match.start()], chr(code)]
        position = match.end()
    return "".join([*decoded, body[position:]])


def _escaped_code(match: re.Match[str]) -> int | None:
    if match["char"] is not None:
        return ord(_SIMPLE_ESCAPES[match["char"]])
    for group, base in (("hex", 16), ("u4", 16), ("u8", 16), ("oct", 8)):
        if match[group] is not None:
            return int(match[group], base)
    return None


def _split_conjunction(tokens: list[_Token]) -> list[list[_Token]]:
    conjuncts: list[list[_Token]] = [[]]
    for token, depth in _with_depth(tokens):
        if depth < 0:
            return []
        if depth == 0 and token.text in ("||", "?", ":"):
            return []  # a disjunction or a conditional: no conjunct is necessary
        if depth == 0 and token.text == "&&":
            conjuncts.append([])
        else:
            conjuncts[-1].append(token)
    return conjuncts


def _with_depth(tokens: list[_Token]) -> Iterator[tuple[_Token, int]]:
    """Each token with the bracket depth around it (an opening bracket sits outside itself)."""
    depth = 0
    for token in tokens:
        if token.kind == "op" and token.text in _CLOSE:
            depth -= 1
        yield token, depth
        if token.kind == "op" and token.text in _OPEN:
            depth += 1


def _unwrap(tokens: list[_Token]) -> list[_Token]:
    """Remove parentheses that enclose the whole conjunct."""
    while len(tokens) >= 2 and tokens[0].text == "(" and tokens[-1].text == ")":
        depths = [depth for _, depth in _with_depth(tokens[1:-1])]
        if depths and min(depths) < 0:
            break  # ``(a) == (b)``: the first parenthesis closes early
        tokens = tokens[1:-1]
    return tokens


def _conjunct(tokens: list[_Token]) -> Requirement | Check | None:
    if len(tokens) > 3 and tokens[0].text == "has" and tokens[1].text == "(":
        return _presence(tokens)
    path = _path(tokens, 0)
    return _path_first(tokens, *path) if path is not None else _literal_first(tokens)


def _path_first(
    tokens: list[_Token], path: tuple[str, tuple[str, ...]], after: int
) -> Requirement | Check | None:
    """``PATH in [...]`` or ``PATH symbol LITERAL``, the whole conjunct."""
    if after < len(tokens) and tokens[after].kind == "ident" and tokens[after].text == "in":
        values = _literal_list(tokens, after + 1)
        return None if values is None else Requirement(*path, frozenset(map(key, values)))
    literal = _literal(tokens, after + 1)
    if literal is None or literal[1] != len(tokens):
        return None
    return _relation(path, tokens[after].text, literal[0])


def _literal_first(tokens: list[_Token]) -> Requirement | Check | None:
    """``LITERAL symbol PATH``, the whole conjunct."""
    literal = _literal(tokens, 0)
    if literal is None or literal[1] >= len(tokens):
        return None
    path = _path(tokens, literal[1] + 1)
    if path is None or path[1] != len(tokens):
        return None
    return _relation(path[0], _MIRRORED.get(tokens[literal[1]].text, ""), literal[0])


def _presence(tokens: list[_Token]) -> Presence | None:
    """``has(PATH)``, the whole conjunct."""
    path = _path(tokens, 2)
    if path is None or path[1] != len(tokens) - 1 or tokens[-1].text != ")" or not path[0][1]:
        return None
    return Presence(*path[0])


def _relation(
    path: tuple[str, tuple[str, ...]], symbol: str, literal: Scalar
) -> Requirement | Check | None:
    """``PATH symbol literal`` if it is a form this module decides."""
    if symbol == "==":
        return Requirement(*path, frozenset([key(literal)]))
    if symbol == "!=":
        return Inequality(*path, key(literal))
    if symbol in _ORDERINGS and not isinstance(literal, bool | None):
        return Comparison(*path, symbol, literal)  # a number or a string
    return None


def _path(tokens: list[_Token], start: int) -> tuple[tuple[str, tuple[str, ...]], int] | None:
    """``event.a["b"]`` from ``start``: ((root, keys), index after it)."""
    if start >= len(tokens) or tokens[start].kind != "ident" or tokens[start].text not in ROOTS:
        return None
    keys: list[str] = []
    position = start + 1
    while position < len(tokens):
        name, position = _path_segment(tokens, position)
        if name is None:
            break
        keys.append(name)
    return (tokens[start].text, tuple(keys)), position


def _path_segment(tokens: list[_Token], position: int) -> tuple[str | None, int]:
    window = [
        token.kind if token.kind != "op" else token.text
        for token in tokens[position : position + 3]
    ]
    if window[:2] == [".", "ident"] and tokens[position + 1].text not in _KEYWORDS:
        return tokens[position + 1].text, position + 2
    name = tokens[position + 1].value if window == ["[", "string", "]"] else None
    if isinstance(name, str):
        return name, position + 3
    return None, position


def _literal(tokens: list[_Token], start: int) -> tuple[Scalar, int] | None:
    """A scalar literal from ``start``: (value, index after it)."""
    if start >= len(tokens):
        return None
    token, negative = tokens[start], False
    if token.text == "-" and start + 1 < len(tokens):
        token, negative = tokens[start + 1], True
        if token.kind not in ("int", "double"):
            return None
    if token.kind == "ident" and token.text in _KEYWORDS:
        return _KEYWORDS[token.text], start + 1
    value = token.value
    if token.kind not in ("string", "int", "uint", "double") or not isinstance(value, Scalar):
        return None
    if negative and isinstance(value, int | float):
        return -value, start + 2
    return value, start + 1


def _literal_list(tokens: list[_Token], start: int) -> list[Scalar] | None:
    """``[1, "a",]`` from ``start`` up to the end of the conjunct."""
    if len(tokens) - start < 2 or tokens[start].text != "[" or tokens[-1].text != "]":
        return None
    values: list[Scalar] = []
    position, end = start + 1, len(tokens) - 1
    while position < end:
        literal = _literal(tokens, position)
        if literal is None or literal[1] > end:
            return None
        values.append(literal[0])
        position = literal[1]
        if position < end and tokens[position].text != ",":
            return None
        position += 1 if position < end else 0
    return values
