"""Blind indexes: equal values find each other, different fields and keys do not collide."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaignflow.security.blind_index import BlindIndex

INDEX = BlindIndex(os.urandom(32))


@given(st.text(max_size=40), st.text(max_size=200))
def test_a_digest_is_deterministic_and_compact(field_name: str, value: str) -> None:
    if "\x00" in field_name:
        return
    digest = INDEX.digest(field_name, value)
    assert digest == INDEX.digest(field_name, value)
    assert len(digest) == 43  # 32 bytes, base64url unpadded


@given(st.text(max_size=100), st.text(max_size=100))
def test_different_values_give_different_digests(first: str, second: str) -> None:
    if first != second:
        assert INDEX.digest("email", first) != INDEX.digest("email", second)


def test_the_field_name_separates_digests() -> None:
    assert INDEX.digest("email", "a@b.c") != INDEX.digest("phone", "a@b.c")
    assert INDEX.digest("ab", "c") != INDEX.digest("a", "bc")


def test_another_key_gives_other_digests() -> None:
    assert BlindIndex(os.urandom(32)).digest("email", "a@b.c") != INDEX.digest("email", "a@b.c")


def test_a_derived_index_depends_only_on_its_key_material() -> None:
    material = os.urandom(32)
    assert BlindIndex.derived_from(material) == BlindIndex.derived_from(material)
    assert BlindIndex.derived_from(material).key != material


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        BlindIndex(b"short")
