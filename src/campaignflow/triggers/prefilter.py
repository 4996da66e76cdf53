"""Cheap necessary conditions read from a trigger's CEL source, checked before CEL runs.

:func:`extract` splits the top-level ``&&`` of an expression and keeps the conjuncts it fully
understands: ``PATH == LITERAL``, ``LITERAL == PATH`` and ``PATH in [LITERAL, ...]``, where PATH
starts at ``event`` or ``contact``. Everything else stays with CEL. The contract is soundness:
whenever CEL evaluates the whole expression to true, :meth:`Prefilter.admits` is true too. CEL's
``&&`` is true only when every conjunct is true (a missing key is an error, never true), so each
kept conjunct is a necessary condition.

Equality is Python's, which is looser than CEL's (``True == 1``), never stricter, with one
exception handled here: CEL compares an int with a double by converting the int to a double, so a
numeric literal at or beyond 2**53 in magnitude is not used.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum

Scalar = str | int | float | bool | None
ROOTS = frozenset({"event", "contact"})
_EXACT_LIMIT = 2**53  # every int below it in magnitude is exactly a double
_KEYWORDS: Mapping[str, Scalar] = {"true": True, "false": False, "null": None}
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


MISSING = _Marker.MISSING
"""What :func:`resolve` returns when a path does not exist."""
_UNUSABLE = _Marker.UNUSABLE


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    value: object = None


@dataclass(frozen=True, slots=True)
class Requirement:
    """The value at ``root.path`` exists and equals one of ``values``."""

    root: str
    path: tuple[str, ...]
    values: frozenset[Scalar]

    def admits(self, variables: Mapping[str, object]) -> bool:
        value = resolve(variables, self.root, self.path)
        try:
            return value in self.values
        except TypeError:  # unhashable: a list or map, which CEL never equals to a scalar
            return False


@dataclass(frozen=True, slots=True)
class Prefilter:
    """Requirements that every event matching the expression meets; empty admits everything."""

    requirements: tuple[Requirement, ...] = ()

    def admits(self, variables: Mapping[str, object]) -> bool:
        """False only when CEL cannot evaluate the expression to true for ``variables``."""
        return all(requirement.admits(variables) for requirement in self.requirements)


def resolve(variables: Mapping[str, object], root: str, path: tuple[str, ...]) -> object:
    """The value at ``root.path`` through nested mappings, or :data:`MISSING`."""
    value = variables.get(root, MISSING)
    for key in path:
        if not isinstance(value, _MAPPINGS):
            return MISSING
        value = value.get(key, MISSING)
    return value


def extract(source: str) -> Prefilter:
    """The requirements readable from ``source``; none when its top level is not a conjunction."""
    tokens = _tokenize(source)
    conjuncts = _split_conjunction(tokens) if tokens is not None else []
    found = (_requirement(_unwrap(conjunct)) for conjunct in conjuncts)
    return Prefilter(tuple(requirement for requirement in found if requirement is not None))


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


def _requirement(tokens: list[_Token]) -> Requirement | None:
    path = _path(tokens, 0)
    if path is not None:
        (root, keys), after = path
        return _right_side(root, keys, tokens, after)
    literal = _literal(tokens, 0)
    if literal is None or literal[1] >= len(tokens) or tokens[literal[1]].text != "==":
        return None
    path = _path(tokens, literal[1] + 1)
    if path is None or path[1] != len(tokens):
        return None
    (root, keys), _ = path
    return Requirement(root, keys, frozenset([literal[0]]))


def _right_side(
    root: str, keys: tuple[str, ...], tokens: list[_Token], after: int
) -> Requirement | None:
    operator = tokens[after].text if after < len(tokens) else ""
    if operator == "==":
        literal = _literal(tokens, after + 1)
        if literal is not None and literal[1] == len(tokens):
            return Requirement(root, keys, frozenset([literal[0]]))
    elif operator == "in" and tokens[after].kind == "ident":
        values = _literal_list(tokens, after + 1)
        if values is not None:
            return Requirement(root, keys, frozenset(values))
    return None


def _path(tokens: list[_Token], start: int) -> tuple[tuple[str, tuple[str, ...]], int] | None:
    """``event.a["b"]`` from ``start``: ((root, keys), index after it)."""
    if start >= len(tokens) or tokens[start].kind != "ident" or tokens[start].text not in ROOTS:
        return None
    keys: list[str] = []
    position = start + 1
    while position < len(tokens):
        key, position = _path_segment(tokens, position)
        if key is None:
            break
        keys.append(key)
    return (tokens[start].text, tuple(keys)), position


def _path_segment(tokens: list[_Token], position: int) -> tuple[str | None, int]:
    window = [
        token.kind if token.kind != "op" else token.text
        for token in tokens[position : position + 3]
    ]
    if window[:2] == [".", "ident"] and tokens[position + 1].text not in _KEYWORDS:
        return tokens[position + 1].text, position + 2
    key = tokens[position + 1].value if window == ["[", "string", "]"] else None
    if isinstance(key, str):
        return key, position + 3
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
