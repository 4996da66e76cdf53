"""Masking of personal data and secrets in log data: pure, precompiled, never raising.

Every log line passes through here (the logging pipeline calls :func:`mask_value` on the whole
event just before rendering), so the rules favour over-masking a harmless number or word over
letting an email address, a phone number or a credential reach a log file, and they are written
to run in time linear in the text (each rule is skipped unless a cheap substring test says it
could apply).

What the output keeps, and why:

- an email keeps its domain only (``***@example.com``): the domain says which mailbox provider
  is involved, which is what deliverability debugging needs; the local part identifies a person
  and is never shown, not even its first letter;
- a phone number becomes ``[PHONE]``; a credential becomes ``[REDACTED]``; both are greppable;
- one of our API keys keeps its visible prefix (``cf_Ab12Cd34_[REDACTED]``), the part lists
  and the audit log show anyway, so a leaked key can be identified and revoked.

Masking is idempotent: masked text masked again is unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from enum import Enum
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode

REDACTED = "[REDACTED]"
PHONE = "[PHONE]"
TOO_DEEP = "[TOO DEEP]"
CYCLE = "[CYCLE]"
UNPRINTABLE = "[UNPRINTABLE]"
MAX_DEPTH = 16

_Match = re.Match[str]
_Rule = tuple[Callable[[str, str], bool], re.Pattern[str], Callable[[_Match], str]]

# A name that says "credential": the end of a key such as ``client_secret``, ``X-Api-Key``,
# ``accessToken`` once lower-cased, with ``-``/``_``/spaces/dots removed.
_CREDENTIAL_ENDINGS = (
    "password", "passwd", "pwd", "passphrase", "secret", "token", "apikey", "privatekey",
    "secretkey", "signingkey", "encryptionkey", "writekey", "credential", "credentials",
    "authorization", "cookie", "sessionid",
)  # fmt: skip
_EMAIL_ENDINGS = ("email", "emails", "emailaddress", "emailaddresses")
_PHONE_ENDINGS = (
    "phone", "phones", "phonenumber", "phonenumbers", "mobile", "mobilenumber", "msisdn",
    "telephone", "cellphone",
)  # fmt: skip
_PERSONAL_NAMES = frozenset(
    {
        "firstname", "lastname", "fullname", "surname", "givenname", "familyname",
        "birthday", "birthdate", "dateofbirth", "dob", "street", "streetaddress",
        "addressline1", "addressline2", "ssn", "iban", "cardnumber",
    }
)  # fmt: skip
_KEY_SEPARATORS = str.maketrans("", "", "-_ .")

# Substrings of every credential name, for a cheap test before the costly pattern.
_CREDENTIAL_WORDS = (
    "pass", "pwd", "secret", "token", "key", "credential", "authorization", "cookie", "session",
)  # fmt: skip
# The same names as they appear in text: ``password=…``, ``"api_key": "…"``, ``token: …``.
_CREDENTIAL_NAMES = (
    r"[\w-]*?(?:password|passwd|pwd|passphrase|secret|token|api[_-]?key|private[_-]?key"
    r"|write[_-]?key|signing[_-]?key|credentials?|authorization|cookie|session[_-]?id)"
)


class KeyKind(Enum):
    """What a mapping key says about its value."""

    PLAIN = "plain"
    CREDENTIAL = "credential"
    EMAIL = "email"
    PHONE = "phone"
    PERSONAL = "personal"


@lru_cache(maxsize=4096)
def key_kind(key: str) -> KeyKind:
    """Classify a key; case, ``-``, ``_``, spaces and dots do not matter (``X-API-Key`` is
    ``apikey``). Cached: log events repeat the same few keys."""
    name = key.lower().translate(_KEY_SEPARATORS)
    if name.endswith(_CREDENTIAL_ENDINGS):
        return KeyKind.CREDENTIAL
    if name.endswith(_EMAIL_ENDINGS):
        return KeyKind.EMAIL
    if name.endswith(_PHONE_ENDINGS):
        return KeyKind.PHONE
    if name in _PERSONAL_NAMES:
        return KeyKind.PERSONAL
    return KeyKind.PLAIN


# --- text rules -------------------------------------------------------------------------------

_HEADER = re.compile(
    r"(?<![\w-])(?P<name>(?:proxy-)?authorization|(?:set-)?cookie|x-api-key|x-auth-token)"
    r"(?P<sep>[ \t]*:[ \t]*)[^\r\n]+",
    re.IGNORECASE,
)
_SCHEME = re.compile(
    r"\b(?P<scheme>bearer|basic)[ \t]+(?P<value>[A-Za-z0-9\-._~+/]+=*)(?![\w=])", re.IGNORECASE
)
_BASE64ISH = re.compile(r"[0-9+/=]|.[A-Z]")
_JWT = re.compile(r"(?<![\w-])eyJ[\w-]+\.[\w-]+\.[\w-]*")
_OUR_KEY = re.compile(r"(?<![\w-])cf_(?:(?P<visible>[A-Za-z0-9]{8})_)?[\w-]{20,}")
_VENDOR_KEY = re.compile(
    r"(?<![\w-])(?:SG\.[\w-]{16,}\.[\w-]{16,}"  # SendGrid
    r"|pat-(?:na|eu)\d-[0-9a-f-]{36}"  # HubSpot private apps
    r"|[0-9a-f]{32}-us\d{1,2})"  # Mailchimp
)
_USERINFO = re.compile(
    r"\b(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^\s:/?#@\[\]]*)"
    r"(?::(?P<password>[^\s/?#@]*))?@"
)
_KEY_VALUE = re.compile(
    rf"(?<![\w-])(?P<q>[\"']?)(?P<key>{_CREDENTIAL_NAMES})(?P=q)(?P<sep>[ \t]*[:=][ \t]*)"
    r"(?P<value>\[REDACTED\]|\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|[^\s&#,;'\"(){}\[\]]+)",
    re.IGNORECASE,
)
# The local part: RFC 5322 characters except ``'``, ``=`` and ``/``, which in logs far more often
# end what comes before an address (``email='…'``, ``to=…``, ``/contacts/…``).
_LOCAL_PART = r"[\w.!#$%&*+?^`{|}~-]"
_EMAIL = re.compile(
    rf"(?<!{_LOCAL_PART}){_LOCAL_PART}+(?:@|%40)(?P<domain>[^\W_](?:[\w-]*[^\W_])?"
    r"(?:\.[^\W_](?:[\w-]*[^\W_])?)+)"
)
# International (E.164 with any grouping), North American, and national numbers with a trunk 0
# ("020 7946 0958", "06 12 34 56 78"). Bare digit runs are never phones here: they are ids,
# counts and epoch timestamps far more often (a value under a phone-like key is masked anyway).
# The "+" may come percent-encoded ("%2B"), as in a raw query string; so may an email's "@".
_PHONE_NUMBER = re.compile(
    r"(?<![\w+.-])(?:"
    r"(?:\+|%2[Bb])[1-9](?:[ .-]?\(?[0-9]\)?){7,14}"
    r"|(?:1[ .-])?(?:\([2-9][0-9]{2}\)[ .-]?|[2-9][0-9]{2}[ .-])[2-9][0-9]{2}[ .-][0-9]{4}"
    r"|(?P<trunk>\(?0[0-9]{1,4}\)?(?:[ -][0-9]{2,8}){1,4})"
    r")(?!\w|[.:-][0-9])"
)
_EIGHT_DIGITS = re.compile(r"[0-9](?:[^0-9]{0,3}[0-9]){7}")
_EMAIL_VALUE = re.compile(rf"\s*{_EMAIL.pattern}\s*")


def _header(match: _Match) -> str:
    return f"{match['name']}{match['sep']}{REDACTED}"


def _scheme(match: _Match) -> str:
    """``Bearer`` anything; ``Basic`` only before what looks like base64 (``basic settings``
    is English)."""
    if match["scheme"].lower() == "basic" and not _BASE64ISH.search(match["value"]):
        return match[0]
    return f"{match['scheme']} {REDACTED}"


def _our_key(match: _Match) -> str:
    visible = match["visible"]
    return f"cf_{visible}_{REDACTED}" if visible else f"cf_{REDACTED}"


def _userinfo(match: _Match) -> str:
    if match["password"] is None:
        return f"{match['scheme']}{REDACTED}@"
    return f"{match['scheme']}{match['user']}:{REDACTED}@"


def _key_value(match: _Match) -> str:
    value = match["value"]
    quote = value[0] if value[0] in "\"'" else ""
    return f"{match['q']}{match['key']}{match['q']}{match['sep']}{quote}{REDACTED}{quote}"


def _email(match: _Match) -> str:
    return f"***@{match['domain']}"


def _phone(match: _Match) -> str:
    """National numbers with a trunk 0 have 9 to 12 digits; fewer is a date or a count."""
    if match["trunk"] is None:
        return PHONE
    digits = sum(char.isdigit() for char in match[0])
    return PHONE if 9 <= digits <= 12 else match[0]


def _redacted(_match: _Match) -> str:
    return REDACTED


def _names_credential(lowered: str) -> bool:
    return any(word in lowered for word in _CREDENTIAL_WORDS)


def _has_phone_digits(text: str, _lowered: str) -> bool:
    return _EIGHT_DIGITS.search(text) is not None


# Each rule runs only if its cheap test on the text (and the text lower-cased) passes: most log
# strings trigger none, and the costly patterns (``name=value``) need a credential word.
# Order matters: whole header values first, then credentials by shape, then the looser
# ``name=value`` rule, then personal data; a later rule never undoes an earlier one.
_RULES: tuple[_Rule, ...] = (
    (lambda text, low: ":" in text and _names_credential(low), _HEADER, _header),
    (lambda _, low: "bearer" in low or "basic" in low, _SCHEME, _scheme),
    (lambda text, _: "eyJ" in text, _JWT, _redacted),
    (lambda text, _: "cf_" in text, _OUR_KEY, _our_key),
    (lambda text, _: "SG." in text or "pat-" in text or "-us" in text, _VENDOR_KEY, _redacted),
    (lambda text, _: "@" in text and "://" in text, _USERINFO, _userinfo),
    (
        lambda text, low: ("=" in text or ":" in text) and _names_credential(low),
        _KEY_VALUE,
        _key_value,
    ),
    (lambda text, _: "@" in text or "%40" in text, _EMAIL, _email),
    (_has_phone_digits, _PHONE_NUMBER, _phone),
)


def mask_text(text: str) -> str:
    """Mask every email, phone number, token, credential header, URL password and secret
    ``name=value`` pair in ``text``."""
    lowered = text.lower()  # replacements never add a trigger, so computing it once is enough
    for applies, pattern, replace in _RULES:
        if applies(text, lowered):
            text = pattern.sub(replace, text)
    return text


def mask_email(value: str) -> str:
    """A value known to be an email address: ``***@domain``, or all of it if it is not one."""
    match = _EMAIL_VALUE.fullmatch(value)
    return f"***@{match['domain']}" if match else REDACTED


def mask_query(query: str) -> str:
    """A URL query string with each parameter masked by its name and value (``email=`` and
    ``token=`` by name, any other value as text), percent-decoded first so that ``%40`` cannot
    hide an email address."""
    try:
        pairs = parse_qsl(query, keep_blank_values=True)
    except ValueError:
        return mask_text(query)
    masked = [(mask_text(key), _mask_query_value(key, value)) for key, value in pairs]
    return urlencode(masked, safe="*@[]:/,")


def _mask_query_value(key: str, value: str) -> str:
    masked = mask_value(value, key_kind(key))
    return masked if isinstance(masked, str) else REDACTED


# --- structured values ------------------------------------------------------------------------


def mask_value(value: object, kind: KeyKind = KeyKind.PLAIN) -> object:
    """Mask a log value of any shape: strings by the text rules, mappings by their keys
    (recursively, lists too). ``kind`` is what the key holding ``value`` said about it.

    Never raises: bytes are decoded, other objects are turned into masked text, and nesting
    deeper than ``MAX_DEPTH`` or cyclic is cut short with a marker.
    """
    return _mask(value, kind, 0, ())


def mask_mapping(mapping: Mapping[str, object]) -> dict[str, object]:
    """:func:`mask_value` for a log event: a mapping in, a new dict of masked fields out."""
    return {
        _mask_key(key): _mask(item, _child_kind(key, KeyKind.PLAIN), 1, (id(mapping),))
        for key, item in _items(mapping)
    }


def _mask(value: object, kind: KeyKind, depth: int, path: tuple[int, ...]) -> object:
    if kind is KeyKind.PLAIN and isinstance(value, str):  # the common case, tested first
        return mask_text(value)
    if isinstance(value, _CONTAINERS):
        if depth >= MAX_DEPTH:
            return TOO_DEEP
        if id(value) in path:
            return CYCLE
        return _mask_nested(value, kind, depth + 1, (*path, id(value)))
    return _mask_scalar(value, kind)


_CONTAINERS = (dict, list, tuple, set, frozenset, Mapping)  # concrete types first: faster


def _mask_nested(
    value: Iterable[object], kind: KeyKind, depth: int, path: tuple[int, ...]
) -> object:
    if isinstance(value, Mapping):
        return {
            _mask_key(key): _mask(item, _child_kind(key, kind), depth, path)
            for key, item in _items(value)
        }
    return [_mask(item, kind, depth, path) for item in _members(value)]


def _mask_scalar(value: object, kind: KeyKind) -> object:
    if value is None or isinstance(value, bool):
        return value
    if kind is not KeyKind.PLAIN:
        return _mask_personal(value, kind)
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, int | float):
        return value
    return mask_text(_as_text(value))


def _items(mapping: Mapping[Any, object]) -> list[tuple[object, object]]:
    try:
        return list(mapping.items())
    except Exception:  # a broken Mapping must not break logging
        return []


def _members(value: Iterable[object]) -> list[object]:
    try:
        return list(value)
    except Exception:  # a broken container must not break logging
        return []


def _child_kind(key: object, inherited: KeyKind) -> KeyKind:
    """A key's own kind wins when it says more than the enclosing key (a ``token`` inside a
    ``contact`` is secret; anything inside an ``email`` field stays email)."""
    kind = key_kind(key) if isinstance(key, str) else KeyKind.PLAIN
    return kind if kind is not KeyKind.PLAIN else inherited


def _mask_key(key: object) -> str:
    return _mask_text_key(key) if isinstance(key, str) else mask_text(_as_text(key))


@lru_cache(maxsize=4096)
def _mask_text_key(key: str) -> str:
    """Keys repeat from line to line (``status``, ``duration_ms``): masked once each."""
    return mask_text(key)


def _mask_personal(value: object, kind: KeyKind) -> str:
    if kind is KeyKind.EMAIL and isinstance(value, str):
        return mask_email(value)
    if kind is KeyKind.PHONE:
        return PHONE
    return REDACTED


def _as_text(value: object) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    try:
        return str(value)
    except Exception:  # an object whose __str__ fails must not break logging
        return UNPRINTABLE
