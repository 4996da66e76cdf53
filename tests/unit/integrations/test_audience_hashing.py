"""Ad-platform hashing vectors: what Meta, Google and LinkedIn match people on.

Three kinds of evidence, in this order:

1. The platforms' own published examples, hard-coded with their source.
2. Meta's official SDK (``facebook-business``, pinned): its Conversions API normaliser
   (``serverside.normalize.Normalize``) and its customer-file formatter
   (``CustomAudience.format_params``), compared over generated inputs. Where our result differs
   on purpose, a test says so and why.
3. Google's published normalisation, ported from its own client-library sample (the
   ``google-ads`` package itself has no normalisation helper, so it is not installed).
"""

from __future__ import annotations

import hashlib
import math
import re
import string
from datetime import date

import pycountry
import pytest
from facebook_business.adobjects.customaudience import CustomAudience
from facebook_business.adobjects.serverside.normalize import Normalize
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaignflow.integrations import audience_hashing
from campaignflow.integrations.audience_hashing import (
    InvalidIdentifier,
    Kind,
    UnsupportedIdentifier,
    batches,
    birth_date,
    hash_identifier,
    is_hashed,
    linkedin_email_sha512,
    normalize,
    sha256_hex,
    supports,
)
from campaignflow.integrations.providers.meta_ads import AudienceMember, audience_payload

many = settings(
    max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
HEX64 = re.compile(r"[0-9a-f]{64}")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# ------------------------------------------------------------------- 1. published examples

# Meta, "Customer Information Parameters" (Conversions API), updated 2026-01-09:
# https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/customer-information-parameters
JOHN_SMITH = "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"
US_PHONE = "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"
MARY = "6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec"
JEONG = "8fa8cd9c440be61d0151429310034083132b35975c4bea67fdd74158eb51db14"
VALERY = "08e1996b5dd49e62a4b4c010d44e4345592a863bb9f8e3976219bac29417149c"
META_PUBLISHED = [
    # em: "Input: John_Smith@gmail.com / Normalized format: john_smith@gmail.com"
    (Kind.EMAIL, "John_Smith@gmail.com", JOHN_SMITH),
    # ph: "Input: US phone number (650)555-1212 / Normalized format: 16505551212". Meta adds the
    # country code 1 itself in the example; we cannot guess a country, so the input carries it.
    (Kind.PHONE, "+1 (650) 555-1212", US_PHONE),
    (Kind.PHONE, "16505551212", US_PHONE),
    # fn: "Mary" -> "mary"; "정" stays as UTF-8; "Valéry" -> "valéry".
    (Kind.FIRST_NAME, "Mary", MARY),
    (Kind.FIRST_NAME, "정", JEONG),
    (Kind.FIRST_NAME, "Valéry", VALERY),
    # ln: "See First Name (fn) for examples."
    (Kind.LAST_NAME, "Valéry", VALERY),
]


@pytest.mark.parametrize(("kind", "value", "digest"), META_PUBLISHED)
def test_metas_published_examples(kind: Kind, value: str, digest: str) -> None:
    assert hash_identifier("meta", kind, value) == digest


def test_a_decomposed_accent_hashes_like_metas_composed_example() -> None:
    """'Vale\u0301ry' (e + combining acute, as some keyboards and PDFs produce) is NFC-composed
    first: Meta's example hashes the composed 'valéry'."""
    assert hash_identifier("meta", Kind.FIRST_NAME, "Vale\u0301ry") == VALERY


# Google's normalisation examples. Data Manager API, "Format user data" (2025-2026):
# https://developers.google.com/data-manager/api/get-started/formatting — "the US phone number
# (800)555-0100 must be formatted and normalized to +18005550100", "user.name+NYC@Example.com ->
# user.name+nyc@example.com"; Google Ads API "Enhanced conversions" / Customer Match: "Remove all
# periods (.) that precede the domain name in gmail.com and googlemail.com email addresses".
GOOGLE_PUBLISHED = [
    (Kind.PHONE, "+1 (800) 555-0100", "+18005550100"),
    (Kind.EMAIL, "user.name+NYC@Example.com", "user.name+nyc@example.com"),
    (Kind.EMAIL, " Cloudy.SanFrancisco@gmail.com ", "cloudysanfrancisco@gmail.com"),
    (Kind.EMAIL, "cloudy.sanfrancisco@googlemail.com", "cloudysanfrancisco@googlemail.com"),
    (Kind.EMAIL, "cloudy.sanfrancisco@gmail.com.au", "cloudy.sanfrancisco@gmail.com.au"),
    # OfflineUserAddressInfo (v25 proto): first name "Remove any extra spaces before, after,
    # and in between"; last name "lower case only and no punctuation".
    (Kind.FIRST_NAME, "  Mary   Ann ", "mary ann"),
    (Kind.LAST_NAME, "O'Brien-Smith", "obriensmith"),
    (Kind.COUNTRY, "us", "US"),
]


@pytest.mark.parametrize(("kind", "value", "normalised"), GOOGLE_PUBLISHED)
def test_googles_published_normalisation(kind: Kind, value: str, normalised: str) -> None:
    assert normalize("google", kind, value) == normalised
    expected = sha(normalised) if is_hashed("google", kind) else normalised
    assert hash_identifier("google", kind, value) == expected


def test_google_sends_country_and_postal_code_in_clear_and_hashes_the_rest() -> None:
    """Google: 'Don't hash the following data: country, state, city, zip code'."""
    clear = {Kind.COUNTRY, Kind.ZIP, Kind.CITY, Kind.STATE, Kind.MOBILE_ADVERTISER_ID}
    hashed = {Kind.EMAIL, Kind.PHONE, Kind.FIRST_NAME, Kind.LAST_NAME, Kind.STREET_ADDRESS}
    assert {k for k in clear | hashed if is_hashed("google", k)} == hashed
    assert hash_identifier("google", Kind.ZIP, " 94043 ") == "94043"


# ------------------------------------------------------- 2a. Meta SDK: Conversions API user_data

ascii_names = st.text(string.ascii_letters, min_size=1, max_size=12)
padded = st.builds("{}{}{}".format, st.sampled_from(["", " ", "  "]), ascii_names, st.just(" "))
places = st.lists(ascii_names, min_size=1, max_size=3).map(" ".join)
phones = st.builds(
    "+{}{} {}".format,
    st.sampled_from(["1", "44", "33", "49", "81", "352", "91"]),
    st.text("0123456789", min_size=3, max_size=4),
    st.text("0123456789", min_size=4, max_size=8),
)
emails = st.builds(
    "{}@{}.{}".format,
    st.text(string.ascii_letters + string.digits + "._-+", min_size=1, max_size=16).filter(
        lambda local: local[0] not in "." and local[-1] not in "."
    ),
    st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=10),
    st.sampled_from(["com", "org", "co", "io", "de"]),
)
zips = st.one_of(
    st.text("0123456789", min_size=5, max_size=5),
    st.builds("{}-{}".format, st.text("0123456789", min_size=5, max_size=5),
              st.text("0123456789", min_size=4, max_size=4)),
)  # fmt: skip
countries = st.sampled_from(sorted(c.alpha_2 for c in pycountry.countries))


capi_people = st.fixed_dictionaries(
    {
        "em": emails,
        "ph": phones,
        "fn": padded,
        "ln": padded,
        "ct": places,
        "st": ascii_names,
        "zp": zips,
        "country": countries,
        "ge": st.sampled_from(["f", "m", " F ", "M"]),
    }
)
KINDS = {
    "em": Kind.EMAIL,
    "ph": Kind.PHONE,
    "fn": Kind.FIRST_NAME,
    "ln": Kind.LAST_NAME,
    "ct": Kind.CITY,
    "st": Kind.STATE,
    "zp": Kind.ZIP,
    "country": Kind.COUNTRY,
    "ge": Kind.GENDER,
}


@many
@given(capi_people)
def test_capi_user_data_matches_metas_sdk(person: dict[str, str]) -> None:
    for field, value in person.items():
        kind = KINDS[field]
        assert hash_identifier("meta", kind, value) == Normalize.normalize_field(field, value)


@many
@given(year=st.integers(1900, 2026), month=st.integers(1, 12), day=st.integers(1, 28))
def test_a_compact_date_of_birth_matches_metas_sdk(year: int, month: int, day: int) -> None:
    compact = f"{year:04}{month:02}{day:02}"
    ours = hash_identifier("meta", Kind.DATE_OF_BIRTH, f"{year}-{month}-{day}")
    assert ours == Normalize.normalize_field("db", compact) == sha(compact)


@many
@given(digest=st.text("0123456789abcdef", min_size=64, max_size=64), upper=st.booleans())
def test_a_sha256_digest_passes_through_as_in_metas_sdk(digest: str, upper: bool) -> None:
    given_value = digest.upper() if upper else digest
    for field, kind in (("em", Kind.EMAIL), ("ph", Kind.PHONE), ("fn", Kind.FIRST_NAME)):
        assert hash_identifier("meta", kind, given_value) == digest
        assert Normalize.normalize_field(field, given_value) == digest


@pytest.mark.parametrize(
    ("field", "kind", "value", "why"),
    [
        ("db", Kind.DATE_OF_BIRTH, "1997-02-16",
         "Meta asks for YYYYMMDD; the SDK hashes the dashes along"),
        ("ge", Kind.GENDER, "female", "Meta matches on f/m; the SDK hashes the whole word"),
        ("fn", Kind.FIRST_NAME, "Anne-Marie", "Meta: 'no punctuation'; the CAPI SDK keeps it"),
        ("ct", Kind.CITY, "St. John's", "Meta: 'no punctuation'; the SDK keeps the apostrophe"),
        ("zp", Kind.ZIP, "00-950", "a Polish code is not a ZIP+4: the SDK keeps only '00'"),
        ("ph", Kind.PHONE, "+44 (0)20 7183 8750",
         "'(0)' is the UK trunk prefix, not dialled from abroad; the SDK keeps the 0, which "
         "makes a number nobody has"),
    ],
)  # fmt: skip
def test_where_we_differ_from_metas_sdk_on_purpose(
    field: str, kind: Kind, value: str, why: str
) -> None:
    assert hash_identifier("meta", kind, value) != Normalize.normalize_field(field, value), why


def test_a_uk_number_with_its_trunk_prefix_in_brackets_is_the_e164_number() -> None:
    assert normalize("meta", Kind.PHONE, "+44 (0)20 7183 8750") == "442071838750"
    assert normalize("google", Kind.PHONE, "+44 (0) 20 7183 8750") == "+442071838750"


def test_meta_refuses_an_md5_digest_the_sdk_would_pass_through() -> None:
    """Meta's SDK passes 32-hex strings (MD5) through; no Meta endpoint matches on MD5, so an
    MD5 is refused as what it claims to be (an e-mail without '@')."""
    md5 = hashlib.md5(b"a@example.com", usedforsecurity=False).hexdigest()
    assert Normalize.normalize_field("em", md5) == md5
    with pytest.raises(InvalidIdentifier, match="email"):
        hash_identifier("meta", Kind.EMAIL, md5)


def test_external_ids_are_hashed_for_the_conversions_api_unlike_the_sdk() -> None:
    """Meta: external_id 'Hashing is recommended', and the Pixel hashes it; the SDK sends it in
    clear. We hash it (and send it in clear only in customer files, as EXTERN_ID)."""
    assert hash_identifier("meta", Kind.EXTERNAL_ID, " CRM-42 ") == sha("crm-42")


# ------------------------------------------------------------ 2b. Meta SDK: customer files

people = st.fixed_dictionaries(
    {
        "email": emails,
        "phone": phones,
        "first": padded,
        "last": padded,
        "city": places,
        "state": ascii_names,
        "zip": zips,
        "country": countries,
        "gender": st.sampled_from(["F", "m", "Female", "male"]),
        "born": st.dates(min_value=date(1900, 1, 1)),
        "extern": st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=20),
        "madid": st.uuids().map(str),
    }
)


def _sdk_value(column: str, person: dict[str, object]) -> str:
    born = person["born"]
    assert isinstance(born, date)
    by_column = {
        "EXTERN_ID": person["extern"],
        "EMAIL": person["email"],
        "PHONE": person["phone"],
        "GEN": person["gender"],
        "DOBY": str(born.year),
        "DOBM": str(born.month),  # unpadded: the SDK pads it
        "DOBD": str(born.day),
        "LN": person["last"],
        "FN": person["first"],
        "CT": person["city"],
        "ST": person["state"],
        "ZIP": person["zip"],
        "COUNTRY": person["country"],
        "MADID": person["madid"],
    }
    return str(by_column[column])


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(people, min_size=1, max_size=4))
def test_customer_files_match_metas_sdk_formatter(persons: list[dict[str, object]]) -> None:
    """The multi-key payload equals what ``CustomAudience.format_params(schema, rows,
    is_raw=True)`` builds from the same raw values: same columns hashed (all but EXTERN_ID),
    same normalisation, same digests. (MADID, which the SDK hashes in multi-key files only, is
    compared in the next test.)"""
    members = [
        AudienceMember.model_validate(
            {
                "email": p["email"],
                "phone": p["phone"],
                "firstName": p["first"],
                "lastName": p["last"],
                "city": p["city"],
                "state": p["state"],
                "zip": p["zip"],
                "country": p["country"],
                "gender": p["gender"],
                "dateOfBirth": str(p["born"]),
                "externalId": p["extern"],
            }
        )
        for p in persons
    ]
    ours = audience_payload(members)
    rows = [[_sdk_value(column, p) for column in ours["schema"]] for p in persons]
    sdk = CustomAudience.format_params(ours["schema"], rows, is_raw=True)["payload"]
    assert ours == {"schema": sdk["schema"], "is_raw": True, "data": sdk["data"]}


def test_mobile_advertiser_ids_are_sent_in_clear_unlike_the_sdks_multi_key_files() -> None:
    """Meta: MADID 'all lowercase, keep hyphens', hashing not required; the SDK sends the
    single-key MOBILE_ADVERTISER_ID schema in clear but hashes a MADID column of a multi-key
    file. We send the id in clear in both (doubtful: see the connector's report)."""
    madid = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
    ours = audience_payload([AudienceMember(mobile_advertiser_id=madid)])
    sdk = CustomAudience.format_params(["MADID"], [[madid]], is_raw=True)["payload"]
    single = CustomAudience.format_params("MOBILE_ADVERTISER_ID", [madid.lower()])["payload"]
    assert ours["data"] == [[madid.lower()]] == [single["data"]]
    assert sdk["data"] == [[sha(madid.lower())]]


def test_customer_file_names_keep_non_latin_letters_unlike_the_sdk() -> None:
    """The SDK's customer-file formatter keeps [a-zA-Z] only, so 'Valéry' becomes 'valry' and
    '정' nothing at all; Meta's own examples hash 'valéry' and '정'."""
    sdk = CustomAudience.format_params(["FN"], [["Valéry"]], is_raw=True)["payload"]["data"]
    ours = audience_payload([AudienceMember(first_name="Valéry")])["data"]
    assert sdk == [[sha("valry")]]
    assert ours == [[VALERY]]


# ------------------------------------------------------------ 3. Google's published sample


def google_sample_normalize_and_hash_email_address(email_address: str) -> str:
    """Ported from googleads/google-ads-python examples/remarketing/
    add_customer_match_user_list.py (``normalize_and_hash_email_address`` and
    ``normalize_and_hash``), Google's own reference for Customer Match e-mails."""
    normalized_email = email_address.strip().lower()
    email_parts = normalized_email.split("@")
    if len(email_parts) > 1 and re.match(r"^(gmail|googlemail)\.com$", email_parts[1]):
        email_parts[0] = email_parts[0].replace(".", "")
        normalized_email = "@".join(email_parts)
    return hashlib.sha256(normalized_email.strip().lower().encode()).hexdigest()


google_emails = st.builds(
    "{}{}@{}{}".format,
    st.sampled_from(["", " "]),
    st.text(string.ascii_letters + string.digits + "._+-", min_size=1, max_size=16).filter(
        lambda local: local[0] != "." and local[-1] != "."
    ),
    st.sampled_from(
        ["gmail.com", "GoogleMail.com", "example.com", "gmail.co.uk", "mail.gmail.com"]
    ),
    st.sampled_from(["", " "]),
)


@many
@given(google_emails)
def test_google_emails_match_googles_published_sample(email: str) -> None:
    assert hash_identifier("google", Kind.EMAIL, email) == (
        google_sample_normalize_and_hash_email_address(email)
    )


@many
@given(phones)
def test_google_phone_numbers_are_e164_with_plus_and_meta_ones_are_bare_digits(phone: str) -> None:
    google, meta = normalize("google", Kind.PHONE, phone), normalize("meta", Kind.PHONE, phone)
    assert re.fullmatch(r"\+[1-9][0-9]{6,14}", google)
    assert google == "+" + meta


# ----------------------------------------------------------------------------- LinkedIn


def test_linkedin_hashes_the_trimmed_lower_case_address_with_sha256_or_sha512() -> None:
    assert hash_identifier("linkedin", Kind.EMAIL, " Jane@Example.COM ") == sha("jane@example.com")
    assert linkedin_email_sha512(" Jane@Example.COM ") == (
        hashlib.sha512(b"jane@example.com").hexdigest()
    )
    digest = hashlib.sha512(b"x@example.com").hexdigest()
    assert linkedin_email_sha512(digest.upper()) == digest  # never hashed twice


def test_linkedin_takes_names_and_countries_in_clear() -> None:
    assert not is_hashed("linkedin", Kind.FIRST_NAME)
    assert hash_identifier("linkedin", Kind.FIRST_NAME, "  Jane  ") == "Jane"
    assert hash_identifier("linkedin", Kind.COUNTRY, "gb") == "GB"


# ------------------------------------------------------------------- rules, across platforms

HASHED_SAMPLES = {
    Kind.EMAIL: "Alice@Example.com",
    Kind.PHONE: "+33 6 12 34 56 78",
    Kind.FIRST_NAME: "Alice",
    Kind.LAST_NAME: "Martin",
    Kind.STREET_ADDRESS: "1 Rue de la Paix",
    Kind.CITY: "Paris",
    Kind.STATE: "IDF",
    Kind.ZIP: "75002",
    Kind.COUNTRY: "FR",
    Kind.DATE_OF_BIRTH: "1990-04-01",
    Kind.GENDER: "female",
    Kind.EXTERNAL_ID: "crm-42",
    Kind.MOBILE_ADVERTISER_ID: "6D92078A-8246-4BA4-AE5B-76104861E7DC",
}
SUPPORTED = [
    (platform, kind)
    for platform in ("meta", "google", "linkedin")
    for kind in Kind
    if supports(platform, kind)  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("platform", "kind"), SUPPORTED)
def test_hashing_is_never_applied_twice(platform: str, kind: Kind) -> None:
    """The value sent, given again, is sent unchanged: a digest is passed through, a value in
    clear is already normalised. So an upload can be built from already-hashed data."""
    sent = hash_identifier(platform, kind, HASHED_SAMPLES[kind])  # type: ignore[arg-type]
    if is_hashed(platform, kind):  # type: ignore[arg-type]
        assert HEX64.fullmatch(sent)
    assert hash_identifier(platform, kind, sent) == sent  # type: ignore[arg-type]


def test_unsupported_kinds_are_a_callers_mistake_not_an_invalid_value() -> None:
    with pytest.raises(UnsupportedIdentifier):
        hash_identifier("linkedin", Kind.PHONE, "+1 650 555 1212")
    assert not supports("google", Kind.GENDER)


INVALID = [
    ("meta", Kind.EMAIL, "alice.example.com", "email must look like"),
    ("meta", Kind.EMAIL, "alice@example", "email must look like"),
    ("meta", Kind.EMAIL, "al ice@example.com", "email must look like"),
    ("meta", Kind.EMAIL, "   ", "email is empty"),
    ("google", Kind.EMAIL, "a@b@example.com", "email must look like"),
    ("meta", Kind.PHONE, "0650 555 1212", "country calling code"),
    ("meta", Kind.PHONE, "+1 650 CALL NOW", "only digits"),
    ("google", Kind.PHONE, "+1 555", "7 to 15 digits"),
    ("google", Kind.PHONE, "+1 650 555 1212 999 999", "7 to 15 digits"),
    ("meta", Kind.FIRST_NAME, "!!! 123", "has no letters"),
    ("meta", Kind.COUNTRY, "UK", "ISO 3166-1"),
    ("google", Kind.COUNTRY, "USA", "ISO 3166-1"),
    ("meta", Kind.DATE_OF_BIRTH, "1997-02-30", "date from 1900"),
    ("meta", Kind.DATE_OF_BIRTH, "16/02/1997", "date from 1900"),
    ("meta", Kind.DATE_OF_BIRTH, "1899-12-31", "date from 1900"),
    ("meta", Kind.GENDER, "x", "f, m, female or male"),
    ("meta", Kind.ZIP, "94025#1", "letters, digits"),
    ("google", Kind.ZIP, "", "zip is empty"),
    ("meta", Kind.MOBILE_ADVERTISER_ID, "not-a-device-id", "UUID"),
]


@pytest.mark.parametrize(("platform", "kind", "value", "message"), INVALID)
def test_an_invalid_value_is_refused_with_the_rule_never_silently_hashed(
    platform: str, kind: Kind, value: str, message: str
) -> None:
    with pytest.raises(InvalidIdentifier) as raised:
        hash_identifier(platform, kind, value)  # type: ignore[arg-type]
    assert raised.value.kind is kind
    assert message in str(raised.value)
    if value.strip():
        assert value.strip() not in str(raised.value)  # personal data stays out of messages


@pytest.mark.parametrize("written", ["1997-02-16", "1997/2/16", "1997.02.16", "19970216"])
def test_dates_of_birth_in_common_writings_are_the_same_day(written: str) -> None:
    assert birth_date(written).isoformat() == "1997-02-16"
    assert normalize("meta", Kind.DATE_OF_BIRTH, written) == "19970216"


@pytest.mark.parametrize(
    ("value", "normalised"),
    [("94025-1234", "94025"), ("SW1A 1AA", "sw1a1aa"), ("00-950", "00950"), (" 75002 ", "75002")],
)
def test_meta_postal_codes_lose_spaces_and_dashes_and_us_zip4_its_extension(
    value: str, normalised: str
) -> None:
    assert normalize("meta", Kind.ZIP, value) == normalised


def test_the_country_list_is_iso_3166_1_alpha_2() -> None:
    codes = {c.alpha_2 for c in pycountry.countries}
    for code in codes:
        assert normalize("google", Kind.COUNTRY, code.lower()) == code
    assert codes == audience_hashing._ISO_3166_ALPHA_2


def test_sha256_hex_is_lower_case_hex_of_utf8() -> None:
    assert sha256_hex("é") == hashlib.sha256("é".encode()).hexdigest()


# ------------------------------------------------------------------------------- batching


@many
@given(items=st.lists(st.integers(), max_size=60), limit=st.integers(1, 25))
def test_batches_keep_every_item_in_order_within_the_limit(items: list[int], limit: int) -> None:
    cut = batches(items, limit)
    assert [item for batch in cut for item in batch] == items
    assert len(cut) == math.ceil(len(items) / limit)
    assert all(len(batch) == limit for batch in cut[:-1])
    assert all(1 <= len(batch) <= limit for batch in cut)


def test_a_batch_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        batches([1, 2], 0)
