"""Normalising and hashing audience identifiers the way each ad platform matches them (pure).

Meta, Google and LinkedIn match uploaded people against their own users by the SHA-256 of a
*normalised* value. A value normalised differently from the platform's rule still uploads
without error; it is a digest that matches nobody, so the audience silently stays empty. The
rules differ between platforms in ways that matter, so each (platform, kind) pair has its own:

* **Meta** (customer-file custom audiences and Conversions API ``user_data``): lower case;
  phone numbers as digits including the country code, without ``+`` or leading zeros; first
  and last names, cities and states as letters only (non-Latin letters kept, in NFC, as Meta's
  examples ``정`` and ``valéry`` show); US ZIP+4 cut to its first five digits; dates of birth
  ``YYYYMMDD``; gender ``f``/``m``; countries ISO 3166-1 alpha-2. Everything is hashed except
  mobile advertiser ids (lower-case UUIDs, sent in clear).
* **Google** (Customer Match, enhanced conversions): e-mail lower case without any whitespace,
  and without the dots of the local part at ``gmail.com``/``googlemail.com`` (as Google's
  documentation and its client-library samples do; the Data Manager API's newer rule that also
  drops a ``+tag`` is not applied); phone numbers E.164 with ``+``; first names lower case with
  single spaces, last names also without punctuation (the ``OfflineUserAddressInfo`` field
  comments); street addresses lower case. Country codes, postal codes, cities, states, mobile
  ids and third-party user ids are sent in clear.
* **LinkedIn** (DMP segment users, Conversions API): e-mail trimmed and lower case, hashed with
  SHA-256 (or SHA-512 for segments); names and countries in clear.

Already hashed input: a value of exactly 64 hex digits (128 for :func:`linkedin_email_sha512`)
for a kind the platform hashes is taken as the caller's own digest and passed through in lower
case, never hashed again. No valid normalised e-mail, phone number, name, date or place has that
form, so the rule cannot mistake raw data for a digest; the one ambiguous kind is the free-form
external id, where a 64-hex id is likewise passed through. An MD5 digest is *not* accepted
(Meta's SDK passes them through, but none of these endpoints matches on MD5).

An invalid value raises :class:`InvalidIdentifier`, naming the kind and the rule but never the
value: these are personal data, and error messages end up in step logs.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Literal, TypeVar

T = TypeVar("T")
Platform = Literal["meta", "google", "linkedin"]


class Kind(StrEnum):
    """What an identifier is; each platform supports some of these."""

    EMAIL = "email"
    PHONE = "phone"
    FIRST_NAME = "first_name"
    LAST_NAME = "last_name"
    STREET_ADDRESS = "street_address"
    CITY = "city"
    STATE = "state"
    ZIP = "zip"
    COUNTRY = "country"
    DATE_OF_BIRTH = "date_of_birth"
    GENDER = "gender"
    EXTERNAL_ID = "external_id"
    MOBILE_ADVERTISER_ID = "mobile_advertiser_id"


class InvalidIdentifier(ValueError):
    """A value that cannot be normalised into what the platform matches on."""

    def __init__(self, kind: Kind, reason: str) -> None:
        super().__init__(f"{kind.value.replace('_', ' ')} {reason}")
        self.kind = kind
        self.reason = reason


class UnsupportedIdentifier(LookupError):
    """The platform does not match on this kind of identifier (a caller's mistake)."""


# ISO 3166-1 alpha-2, 2024 list (249 codes; the unit tests compare it with pycountry's).
_ISO_CODES = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR
    BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ
    EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW
    GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY
    KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV
    MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY
    QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG
    TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM
    ZW
"""
_ISO_3166_ALPHA_2 = frozenset(_ISO_CODES.split())
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
_SHA512_HEX = re.compile(r"[0-9a-fA-F]{128}")
_EMAIL = re.compile(r"[^\s@]+@[^\s@.]+(?:\.[^\s@.]+)+")
_GMAIL = re.compile(r"(?:gmail|googlemail)\.com")
_PHONE_SEPARATORS = re.compile(r"[\s().\-/]")
_TRUNK_ZERO = re.compile(r"\(\s*0\s*\)")  # "+44 (0)20 …": the national prefix, not dialled
_PHONE_DIGITS = re.compile(r"[0-9]{7,15}")
_MOBILE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_US_ZIP_PLUS_4 = re.compile(r"([0-9]{5})-[0-9]{4}")
_POSTAL_CODE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 -]{0,12}[A-Za-z0-9])?")
_DATE_DASHED = re.compile(r"([0-9]{4})([-/.])([0-9]{1,2})\2([0-9]{1,2})")
_DATE_COMPACT = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})")
_WHITESPACE = re.compile(r"\s+")
_GENDERS = {"f": "f", "female": "f", "m": "m", "male": "m"}
_EARLIEST_BIRTH_YEAR = 1900  # Meta: "YYYY format from 1900 to current year"


# ------------------------------------------------------------------------------- primitives


def sha256_hex(text: str) -> str:
    """Lower-case hex SHA-256 of the UTF-8 bytes, the encoding every platform asks for."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha512_hex(text: str) -> str:
    return hashlib.sha512(text.encode("utf-8")).hexdigest()


def _text(kind: Kind, value: str) -> str:
    """NFC and trimmed, so the same name typed or pasted differently hashes the same."""
    text = unicodedata.normalize("NFC", value).strip()
    if not text:
        raise InvalidIdentifier(kind, "is empty")
    return text


def _single_spaced(kind: Kind, value: str) -> str:
    return _WHITESPACE.sub(" ", _text(kind, value))


def _letters_only(kind: Kind, value: str) -> str:
    """Lower-case letters (and their combining marks), nothing else: Meta's 'lowercase, no
    punctuation, no spaces' for names and places, keeping non-Latin letters."""
    text = _text(kind, value).lower()
    letters = "".join(ch for ch in text if unicodedata.category(ch)[0] in "LM")
    if not letters:
        raise InvalidIdentifier(kind, "has no letters")
    return letters


# ----------------------------------------------------------------------------- by identifier


def _email(value: str) -> str:
    text = _text(Kind.EMAIL, value).lower()
    if not _EMAIL.fullmatch(text):
        raise InvalidIdentifier(Kind.EMAIL, "must look like name@example.com")
    return text


def _google_email(value: str) -> str:
    """Whitespace anywhere removed (Google: 'leading, trailing and intermediate'), and the dots
    of a Gmail local part, which Gmail ignores: j.doe@gmail.com is jdoe@gmail.com."""
    text = _WHITESPACE.sub("", unicodedata.normalize("NFC", value))
    if not text:
        raise InvalidIdentifier(Kind.EMAIL, "is empty")
    local, _, domain = _email(text).partition("@")
    if _GMAIL.fullmatch(domain):
        local = local.replace(".", "")
    return f"{local}@{domain}"


def _phone_digits(value: str) -> str:
    """The E.164 digits (country code first) of a number written with ``+`` or ``00`` or
    already as bare international digits; separators (spaces, - ( ) . /) are dropped, and so
    is a trunk prefix written as ``(0)`` after the country code."""
    text = _TRUNK_ZERO.sub("", _text(Kind.PHONE, value))
    compact = _PHONE_SEPARATORS.sub("", text)
    if compact.startswith("+"):
        compact = compact[1:]
    elif compact.startswith("00"):
        compact = compact[2:]
    if not compact.isascii() or not compact.isdigit():
        raise InvalidIdentifier(Kind.PHONE, "may hold only digits, spaces and + - ( ) . /")
    if compact.startswith("0"):
        raise InvalidIdentifier(Kind.PHONE, "must start with the country calling code")
    if not _PHONE_DIGITS.fullmatch(compact):
        raise InvalidIdentifier(Kind.PHONE, "must have 7 to 15 digits with the country code")
    return compact


def _google_phone(value: str) -> str:
    return "+" + _phone_digits(value)


def _country(value: str) -> str:
    code = _text(Kind.COUNTRY, value).upper()
    if code not in _ISO_3166_ALPHA_2:
        raise InvalidIdentifier(Kind.COUNTRY, "must be an ISO 3166-1 alpha-2 code such as US")
    return code


def _meta_zip(value: str) -> str:
    compact = _WHITESPACE.sub("", _text(Kind.ZIP, value)).lower()
    us_zip_plus_4 = _US_ZIP_PLUS_4.fullmatch(compact)
    if us_zip_plus_4:
        return us_zip_plus_4.group(1)
    compact = compact.replace("-", "")
    if not _POSTAL_CODE.fullmatch(compact):
        raise InvalidIdentifier(Kind.ZIP, "may hold only letters, digits, spaces and hyphens")
    return compact


def _postal_code(value: str) -> str:
    code = _single_spaced(Kind.ZIP, value)
    if not _POSTAL_CODE.fullmatch(code):
        raise InvalidIdentifier(Kind.ZIP, "may hold only letters, digits, spaces and hyphens")
    return code


def birth_date(value: str) -> date:
    """A date of birth written YYYY-MM-DD (or with / or .) or YYYYMMDD."""
    text = _text(Kind.DATE_OF_BIRTH, value)
    found = _DATE_DASHED.fullmatch(text)
    parts: tuple[str, ...] | None = (found[1], found[3], found[4]) if found else None
    if parts is None and (compact := _DATE_COMPACT.fullmatch(text)):
        parts = (compact[1], compact[2], compact[3])
    try:
        born = date(int(parts[0]), int(parts[1]), int(parts[2])) if parts else None
    except ValueError:
        born = None
    if born is None or born.year < _EARLIEST_BIRTH_YEAR:
        raise InvalidIdentifier(Kind.DATE_OF_BIRTH, "must be a date from 1900 on, as YYYY-MM-DD")
    return born


def _meta_birth_date(value: str) -> str:
    return birth_date(value).strftime("%Y%m%d")


def _gender(value: str) -> str:
    gender = _GENDERS.get(_text(Kind.GENDER, value).lower())
    if gender is None:
        raise InvalidIdentifier(Kind.GENDER, "must be f, m, female or male")
    return gender


def _meta_external_id(value: str) -> str:
    """Lower-cased, as Meta's SDK does for the EXTERN_ID column of customer files."""
    return _text(Kind.EXTERNAL_ID, value).lower()


def _mobile_id(value: str) -> str:
    """An IDFA or Android advertising id: a UUID, lower case with its hyphens (Meta's MADID
    rule; Google takes the same form)."""
    text = _text(Kind.MOBILE_ADVERTISER_ID, value).lower()
    if not _MOBILE_ID.fullmatch(text):
        raise InvalidIdentifier(Kind.MOBILE_ADVERTISER_ID, "must be a UUID (IDFA or GAID)")
    return text


def _google_last_name(value: str) -> str:
    text = "".join(
        ch for ch in _text(Kind.LAST_NAME, value) if not unicodedata.category(ch).startswith("P")
    )
    return _single_spaced(Kind.LAST_NAME, text).lower()


# ------------------------------------------------------------------------------------ rules


@dataclass(frozen=True, slots=True)
class _Rule:
    normalize: Callable[[str], str]
    hashed: bool


def _of(kind: Kind, function: Callable[[Kind, str], str]) -> Callable[[str], str]:
    return lambda value: function(kind, value)


def _lower(function: Callable[[str], str]) -> Callable[[str], str]:
    return lambda value: function(value).lower()


_RULES: dict[tuple[Platform, Kind], _Rule] = {
    ("meta", Kind.EMAIL): _Rule(_email, hashed=True),
    ("meta", Kind.PHONE): _Rule(_phone_digits, hashed=True),
    ("meta", Kind.FIRST_NAME): _Rule(_of(Kind.FIRST_NAME, _letters_only), hashed=True),
    ("meta", Kind.LAST_NAME): _Rule(_of(Kind.LAST_NAME, _letters_only), hashed=True),
    ("meta", Kind.CITY): _Rule(_of(Kind.CITY, _letters_only), hashed=True),
    ("meta", Kind.STATE): _Rule(_of(Kind.STATE, _letters_only), hashed=True),
    ("meta", Kind.ZIP): _Rule(_meta_zip, hashed=True),
    ("meta", Kind.COUNTRY): _Rule(_lower(_country), hashed=True),
    ("meta", Kind.DATE_OF_BIRTH): _Rule(_meta_birth_date, hashed=True),
    ("meta", Kind.GENDER): _Rule(_gender, hashed=True),
    ("meta", Kind.EXTERNAL_ID): _Rule(_meta_external_id, hashed=True),
    ("meta", Kind.MOBILE_ADVERTISER_ID): _Rule(_mobile_id, hashed=False),
    ("google", Kind.EMAIL): _Rule(_google_email, hashed=True),
    ("google", Kind.PHONE): _Rule(_google_phone, hashed=True),
    ("google", Kind.FIRST_NAME): _Rule(_lower(_of(Kind.FIRST_NAME, _single_spaced)), hashed=True),
    ("google", Kind.LAST_NAME): _Rule(_google_last_name, hashed=True),
    ("google", Kind.STREET_ADDRESS): _Rule(
        _lower(_of(Kind.STREET_ADDRESS, _single_spaced)), hashed=True
    ),
    ("google", Kind.CITY): _Rule(_of(Kind.CITY, _single_spaced), hashed=False),
    ("google", Kind.STATE): _Rule(_of(Kind.STATE, _single_spaced), hashed=False),
    ("google", Kind.ZIP): _Rule(_postal_code, hashed=False),
    ("google", Kind.COUNTRY): _Rule(_country, hashed=False),
    ("google", Kind.EXTERNAL_ID): _Rule(_of(Kind.EXTERNAL_ID, _text), hashed=False),
    ("google", Kind.MOBILE_ADVERTISER_ID): _Rule(_mobile_id, hashed=False),
    ("linkedin", Kind.EMAIL): _Rule(_email, hashed=True),
    ("linkedin", Kind.FIRST_NAME): _Rule(_of(Kind.FIRST_NAME, _single_spaced), hashed=False),
    ("linkedin", Kind.LAST_NAME): _Rule(_of(Kind.LAST_NAME, _single_spaced), hashed=False),
    ("linkedin", Kind.COUNTRY): _Rule(_country, hashed=False),
    ("linkedin", Kind.MOBILE_ADVERTISER_ID): _Rule(_mobile_id, hashed=False),
}


def _rule(platform: Platform, kind: Kind) -> _Rule:
    try:
        return _RULES[platform, kind]
    except KeyError:
        raise UnsupportedIdentifier(f"{platform} does not match on {kind.value}") from None


def supports(platform: Platform, kind: Kind) -> bool:
    return (platform, kind) in _RULES


def is_hashed(platform: Platform, kind: Kind) -> bool:
    """Whether the platform receives this kind as a SHA-256 digest (else in clear)."""
    return _rule(platform, kind).hashed


def normalize(platform: Platform, kind: Kind, value: str) -> str:
    """The value as the platform's rule writes it, before any hashing."""
    return _rule(platform, kind).normalize(value)


def _digest(value: str, pattern: re.Pattern[str]) -> str | None:
    text = value.strip()
    return text.lower() if pattern.fullmatch(text) else None


def hash_identifier(platform: Platform, kind: Kind, value: str) -> str:
    """What the platform receives for ``value``: the SHA-256 of its normalised form for the
    kinds the platform hashes (a digest given by the caller passed through), the normalised
    value itself for the kinds it takes in clear."""
    rule = _rule(platform, kind)
    if not rule.hashed:
        return rule.normalize(value)
    digest = _digest(value, _SHA256_HEX)
    return digest if digest is not None else sha256_hex(rule.normalize(value))


def linkedin_email_sha512(value: str) -> str:
    """LinkedIn's SHA512_EMAIL for a DMP segment (a 128-hex digest passed through)."""
    digest = _digest(value, _SHA512_HEX)
    return digest if digest is not None else sha512_hex(normalize("linkedin", Kind.EMAIL, value))


# ---------------------------------------------------------------------------------- batching


def batches(items: Sequence[T], limit: int) -> list[list[T]]:
    """``items`` in order, cut into lists of at most ``limit``: how a caller splits an audience
    into calls a platform accepts (10,000 per Meta call, 2,000 conversions per Google call)."""
    if limit < 1:
        raise ValueError("a batch holds at least one item")
    return [list(items[start : start + limit]) for start in range(0, len(items), limit)]
