"""Envelope encryption: what a sealed value promises — it opens only unchanged, only in its
context, only with its key — and what rotation relies on (re-wrapping keeps it openable)."""

from __future__ import annotations

import base64
import os
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaignflow.errors import SealedDataError
from campaignflow.security.envelope import KeyRing

K1, K2, K3 = os.urandom(32), os.urandom(32), os.urandom(32)
OLD = KeyRing({"k1": K1}, "k1")
BOTH = KeyRing({"k1": K1, "k2": K2}, "k2")
NEW_ONLY = KeyRing({"k2": K2}, "k2")

plaintexts = st.binary(max_size=2048)
contexts = st.text(max_size=80)


@given(plaintexts, contexts)
def test_a_sealed_value_opens_to_its_plaintext(plaintext: bytes, context: str) -> None:
    sealed = OLD.seal(plaintext, context=context)
    assert OLD.open(sealed, context=context) == plaintext
    assert OLD.key_id_of(sealed) == "k1"


@given(plaintexts, contexts)
def test_sealed_text_is_printable_versioned_and_hides_the_plaintext(
    plaintext: bytes, context: str
) -> None:
    sealed = OLD.seal(plaintext, context=context)
    assert re.fullmatch(r"v1\.k1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", sealed)
    if len(plaintext) >= 8:
        assert plaintext not in base64.urlsafe_b64decode(sealed.split(".")[3] + "==")


def test_equal_plaintexts_seal_differently() -> None:
    """A fresh data key and nonce each time: equal credentials are not recognisable as equal."""
    assert OLD.seal(b"same", context="c") != OLD.seal(b"same", context="c")


@given(plaintexts, contexts, st.data())
def test_any_changed_character_makes_it_fail_to_open(
    plaintext: bytes, context: str, data: st.DataObject
) -> None:
    sealed = OLD.seal(plaintext, context=context)
    index = data.draw(st.integers(0, len(sealed) - 1))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.="
    replacement = data.draw(st.sampled_from(alphabet).filter(lambda c: c != sealed[index]))
    tampered = sealed[:index] + replacement + sealed[index + 1 :]
    with pytest.raises(SealedDataError):
        OLD.open(tampered, context=context)


@given(plaintexts, contexts, st.data())
def test_any_flipped_bit_of_either_part_makes_it_fail_to_open(
    plaintext: bytes, context: str, data: st.DataObject
) -> None:
    version, key_id, *parts = OLD.seal(plaintext, context=context).split(".")
    which = data.draw(st.sampled_from([0, 1]))
    raw = bytearray(base64.urlsafe_b64decode(parts[which] + "=="))
    bit = data.draw(st.integers(0, len(raw) * 8 - 1))
    raw[bit // 8] ^= 1 << (bit % 8)
    parts[which] = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(SealedDataError):
        OLD.open(".".join([version, key_id, *parts]), context=context)


@given(plaintexts, contexts, contexts)
def test_a_value_does_not_open_in_another_context(
    plaintext: bytes, context: str, other: str
) -> None:
    if other == context:
        return
    sealed = OLD.seal(plaintext, context=context)
    with pytest.raises(SealedDataError):
        OLD.open(sealed, context=other)


def test_relabelling_the_key_id_does_not_open() -> None:
    """The wrapped data key is bound to its KEK id: a value claiming to be under another key of
    the ring is refused even if that key is the same bytes."""
    twin = KeyRing({"k1": K1, "kx": K1}, "k1")
    sealed = twin.seal(b"secret", context="c")
    with pytest.raises(SealedDataError):
        twin.open(sealed.replace("v1.k1.", "v1.kx.", 1), context="c")


def test_mixing_parts_of_two_values_does_not_open() -> None:
    first = OLD.seal(b"one", context="c").split(".")
    second = OLD.seal(b"two", context="c").split(".")
    with pytest.raises(SealedDataError):
        OLD.open(".".join([*first[:3], second[3]]), context="c")


@pytest.mark.parametrize(
    "sealed",
    [
        "",
        "v1",
        "v2.k1.AAAA.AAAA",
        "v1.k1.AAAA",
        "v1.k1.AAAA.AAAA.AAAA",
        "v1.k 1.AA.AA",
        "v1.k1.!!.AA",
    ],
)
def test_malformed_values_are_refused_as_sealed_data_errors(sealed: str) -> None:
    with pytest.raises(SealedDataError):
        OLD.open(sealed, context="c")


def test_a_value_under_an_unknown_key_names_the_key() -> None:
    sealed = NEW_ONLY.seal(b"x", context="c")
    with pytest.raises(SealedDataError, match="'k2'"):
        OLD.open(sealed, context="c")


@given(plaintexts, contexts)
def test_rewrapped_values_open_under_the_new_key_alone(plaintext: bytes, context: str) -> None:
    sealed = OLD.seal(plaintext, context=context)
    rewrapped = BOTH.rewrap(sealed, context=context)
    assert BOTH.key_id_of(rewrapped) == "k2"
    assert NEW_ONLY.open(rewrapped, context=context) == plaintext
    assert BOTH.open(sealed, context=context) == plaintext  # not yet re-wrapped: still opens
    with pytest.raises(SealedDataError):
        NEW_ONLY.open(sealed, context=context)  # old KEK removed: the old value is gone


def test_rewrap_keeps_the_ciphertext_and_leaves_current_values_alone() -> None:
    sealed = OLD.seal(b"payload", context="c")
    rewrapped = BOTH.rewrap(sealed, context="c")
    assert rewrapped.split(".")[3] == sealed.split(".")[3]
    assert BOTH.rewrap(rewrapped, context="c") == rewrapped


def test_rewrap_refuses_a_value_of_another_context() -> None:
    sealed = OLD.seal(b"payload", context="c")
    with pytest.raises(SealedDataError):
        BOTH.rewrap(sealed, context="d")


@pytest.mark.parametrize(
    ("keys", "active", "message"),
    [
        ({"k1": K1}, "k2", "not in the ring"),
        ({"k1": K1[:16]}, "k1", "32 bytes"),
        ({"k.1": K1}, "k.1", "key id"),
    ],
)
def test_a_ring_refuses_keys_it_could_not_use(
    keys: dict[str, bytes], active: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        KeyRing(keys, active)


def test_a_ring_is_not_changed_through_the_mapping_it_was_built_from() -> None:
    keys = {"k1": K1}
    ring = KeyRing(keys, "k1")
    keys["k1"] = K3
    assert ring.open(OLD.seal(b"x", context="c"), context="c") == b"x"
