"""Key material: the key file an operator keeps, the key in the environment, and the errors
that must name what is wrong before anything is encrypted with a bad key."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from campaignflow.config import get_settings
from campaignflow.errors import ConfigurationError
from campaignflow.security.blind_index import BlindIndex
from campaignflow.security.key_file import (
    effective_encryption,
    embedded_encryption,
    ensure_key_file,
    load_blind_index,
    load_key_ring,
    master_key_id,
    rotate_key_file,
)
from campaignflow.security.settings import EncryptionSettings

KEY = base64.b64encode(os.urandom(32)).decode()


def write(path: Path, document: Any, mode: int = 0o600) -> Path:
    path.write_text(json.dumps(document))
    path.chmod(mode)
    return path


def from_file(path: Path) -> EncryptionSettings:
    return EncryptionSettings(key_file=path)


def test_first_start_creates_a_private_key_file_and_later_starts_keep_it(tmp_path: Path) -> None:
    path = tmp_path / "data" / "keys.json"
    assert ensure_key_file(path) is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ring = load_key_ring(from_file(path))
    sealed = ring.seal(b"credential", context="c")

    assert ensure_key_file(path) is False
    assert load_key_ring(from_file(path)).open(sealed, context="c") == b"credential"
    assert not [p for p in path.parent.iterdir() if p.name != "keys.json"]  # no temp files left


def test_rotation_adds_an_active_key_and_keeps_the_old_ones(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    ensure_key_file(path)
    before = load_key_ring(from_file(path))
    sealed = before.seal(b"credential", context="c")

    new_id = rotate_key_file(path)

    after = load_key_ring(from_file(path))
    assert after.active_id == new_id != before.active_id
    assert set(after.keys) == {before.active_id, new_id}
    assert after.open(sealed, context="c") == b"credential"
    assert after.key_id_of(after.seal(b"x", context="c")) == new_id
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_rotation_does_not_change_the_blind_index(tmp_path: Path) -> None:
    """Lookup digests are stored with the data: a rotation that changed them would make every
    encrypted contact field unfindable."""
    path = tmp_path / "keys.json"
    ensure_key_file(path)
    before = load_blind_index(from_file(path)).digest("email", "ada@example.com")
    rotate_key_file(path)
    document = json.loads(path.read_text())
    del document["keys"][next(iter(document["keys"]))]  # an operator retires the old KEK
    write(path, document)
    assert load_blind_index(from_file(path)).digest("email", "ada@example.com") == before


def test_a_file_without_a_blind_index_key_derives_it_from_its_first_key(tmp_path: Path) -> None:
    other = base64.b64encode(os.urandom(32)).decode()
    path = write(tmp_path / "keys.json", {"active": "b", "keys": {"a": KEY, "b": other}})
    assert load_blind_index(from_file(path)) == BlindIndex.derived_from(base64.b64decode(KEY))


def test_an_explicit_blind_index_key_wins(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    ensure_key_file(path)
    explicit = base64.b64encode(os.urandom(32)).decode()
    settings = EncryptionSettings(key_file=path, blind_index_key=SecretStr(explicit))
    assert load_blind_index(settings).key == base64.b64decode(explicit)


def test_the_master_key_from_the_environment_has_a_stable_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CAMPAIGNFLOW_ENCRYPTION__MASTER_KEY", KEY)
    ring = load_key_ring(get_settings().encryption)
    again = load_key_ring(get_settings().encryption)
    assert ring.active_id == again.active_id == master_key_id(base64.b64decode(KEY))
    assert again.open(ring.seal(b"x", context="c"), context="c") == b"x"
    another = SecretStr(base64.b64encode(os.urandom(32)).decode())
    assert load_key_ring(EncryptionSettings(master_key=another)).active_id != ring.active_id


@pytest.mark.parametrize(
    ("document", "mode", "message"),
    [
        ({"active": "a", "keys": {"a": KEY}}, 0o604, "accessible to other users"),
        ({"active": "a", "keys": {"a": "not base64!"}}, 0o600, "key 'a' .* not valid base64"),
        ({"active": "a", "keys": {"a": base64.b64encode(b"short").decode()}}, 0o600, "32 bytes"),
        ({"active": "b", "keys": {"a": KEY}}, 0o600, "active key 'b' is not in keys"),
        ({"active": "a", "keys": {}}, 0o600, "must hold"),
        ({"keys": {"a": KEY}}, 0o600, "must hold"),
        ({"active": "a.b", "keys": {"a.b": KEY}}, 0o600, "key id"),
        (["a"], 0o600, "must hold"),
    ],
)
def test_a_bad_key_file_is_refused_with_the_reason(
    tmp_path: Path, document: Any, mode: int, message: str
) -> None:
    path = write(tmp_path / "keys.json", document, mode)
    with pytest.raises(ConfigurationError, match=message):
        load_key_ring(from_file(path))


def test_a_missing_or_unparseable_key_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_key_ring(from_file(tmp_path / "absent.json"))
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    broken.chmod(0o600)
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        load_key_ring(from_file(broken))


def test_an_unreadable_key_file_is_refused(tmp_path: Path) -> None:
    """(A directory, since the tests may run as root, who can read any file.)"""
    path = tmp_path / "keys.json"
    path.mkdir()
    with pytest.raises(ConfigurationError, match="cannot be read"):
        load_key_ring(from_file(path))


def test_a_bad_master_key_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="MASTER_KEY must be 32 bytes"):
        load_key_ring(EncryptionSettings(master_key=SecretStr(base64.b64encode(b"x").decode())))


def test_no_key_at_all_says_what_to_set() -> None:
    with pytest.raises(ConfigurationError, match="MASTER_KEY"):
        load_key_ring(EncryptionSettings())


def test_a_key_file_and_a_master_key_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not both"):
        EncryptionSettings(key_file=tmp_path / "k.json", master_key=SecretStr(KEY))


def test_embedded_mode_creates_its_key_file_once_and_rotation_finds_it(tmp_path: Path) -> None:
    first = embedded_encryption(EncryptionSettings(), tmp_path)
    assert first.key_file == tmp_path / "keys.json"
    ring = load_key_ring(first)
    again = embedded_encryption(EncryptionSettings(), tmp_path)
    assert load_key_ring(again).active_id == ring.active_id
    assert effective_encryption(EncryptionSettings(), tmp_path).key_file == first.key_file


def test_a_configured_key_keeps_embedded_mode_from_making_a_file(tmp_path: Path) -> None:
    settings = EncryptionSettings(master_key=SecretStr(KEY))
    assert embedded_encryption(settings, tmp_path) == settings
    assert not (tmp_path / "keys.json").exists()


def test_rotating_a_missing_key_file_says_so_and_leaves_nothing_behind(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        rotate_key_file(tmp_path / "keys.json")
    assert list(tmp_path.iterdir()) == []
