"""Key material for encryption at rest: the key file, the master key, and the rings built from
them.

The key file is JSON, readable by its owner only::

    {"active": "k3f9a…", "keys": {"k3f9a…": "<base64 32 bytes>", …}, "blind_index": "<base64>"}

``rotate_key_file`` adds a key and makes it active but keeps the others: values they wrapped must
still open until ``rotate-key`` has re-wrapped them. The blind index key is stored apart from the
KEKs so that retiring an old KEK never changes a lookup digest.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import os
import secrets
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson
from pydantic import SecretStr

from campaignflow.errors import ConfigurationError
from campaignflow.security.blind_index import BlindIndex
from campaignflow.security.envelope import KEY_BYTES, KEY_ID_PATTERN, KeyRing, generate_key
from campaignflow.security.settings import EncryptionSettings

KEY_FILE_NAME = "keys.json"
MASTER_KEY_ENV = "CAMPAIGNFLOW_ENCRYPTION__MASTER_KEY"


class KeyFile:
    """The parsed content of a key file."""

    def __init__(self, active: str, keys: Mapping[str, bytes], blind_index: bytes | None) -> None:
        self.active = active
        self.keys = dict(keys)
        self.blind_index = blind_index

    def ring(self) -> KeyRing:
        return KeyRing(self.keys, self.active)

    def document(self) -> dict[str, Any]:
        document: dict[str, Any] = {"active": self.active, "keys": _encode_all(self.keys)}
        if self.blind_index is not None:
            document["blind_index"] = _encode(self.blind_index)
        return document


# --- building rings from settings ---------------------------------------------------------


def effective_encryption(settings: EncryptionSettings, data_dir: Path) -> EncryptionSettings:
    """The settings with the embedded default filled in: with neither a key file nor a master
    key configured, ``data_dir/keys.json`` if it exists (``up`` creates it)."""
    default = data_dir / KEY_FILE_NAME
    if settings.key_file is None and settings.master_key is None and default.exists():
        return settings.model_copy(update={"key_file": default})
    return settings


def embedded_encryption(settings: EncryptionSettings, data_dir: Path) -> EncryptionSettings:
    """What ``campaignflow up`` runs with: ``data_dir/keys.json``, created on first start,
    unless a key is configured."""
    if settings.key_file is None and settings.master_key is None:
        ensure_key_file(data_dir / KEY_FILE_NAME)
    return effective_encryption(settings, data_dir)


def load_key_ring(settings: EncryptionSettings) -> KeyRing:
    """The ring from the key file or the master key; :class:`ConfigurationError` naming what
    is wrong otherwise."""
    if settings.key_file is not None:
        return read_key_file(settings.key_file).ring()
    if settings.master_key is not None:
        key = _master_key(settings.master_key)
        return KeyRing({master_key_id(key): key}, master_key_id(key))
    raise ConfigurationError(
        "No encryption key: set CAMPAIGNFLOW_ENCRYPTION__KEY_FILE or "
        f"{MASTER_KEY_ENV} (base64 of 32 random bytes)."
    )


def load_blind_index(settings: EncryptionSettings) -> BlindIndex:
    """``blind_index_key`` if set; else the key file's ``blind_index`` key (HKDF of its first
    key for a file written without one); else HKDF of the master key."""
    if settings.blind_index_key is not None:
        name = "CAMPAIGNFLOW_ENCRYPTION__BLIND_INDEX_KEY"
        return BlindIndex(_decode(settings.blind_index_key.get_secret_value(), name))
    if settings.key_file is not None:
        content = read_key_file(settings.key_file)
        if content.blind_index is not None:
            return BlindIndex(content.blind_index)
        return BlindIndex.derived_from(next(iter(content.keys.values())))
    if settings.master_key is not None:
        return BlindIndex.derived_from(_master_key(settings.master_key))
    raise ConfigurationError("No key for blind indexes: set an encryption key first.")


def _master_key(secret: SecretStr) -> bytes:
    return _decode(secret.get_secret_value(), MASTER_KEY_ENV)


def master_key_id(key: bytes) -> str:
    """A stable id for the environment's key (so values it wrapped name it), from its hash."""
    return "m" + hashlib.sha256(b"campaignflow kek id\x00" + key).hexdigest()[:16]


# --- the key file -------------------------------------------------------------------------


def read_key_file(path: Path) -> KeyFile:
    """Parse and check a key file; every problem is a :class:`ConfigurationError` naming it."""
    try:
        with path.open("rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            raw = handle.read()
    except FileNotFoundError as exc:
        raise ConfigurationError(f"Key file {path} does not exist.") from exc
    except OSError as exc:
        raise ConfigurationError(f"Key file {path} cannot be read: {exc.strerror}.") from exc
    if mode & stat.S_IRWXO:
        raise ConfigurationError(
            f"Key file {path} is accessible to other users (mode {stat.filemode(mode)}); "
            f"run `chmod 600 {path}`."
        )
    return _parse_key_file(path, raw)


def _parse_key_file(path: Path, raw: bytes) -> KeyFile:
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ConfigurationError(f"Key file {path} is not valid JSON: {exc}.") from exc
    keys = document.get("keys") if isinstance(document, dict) else None
    active = document.get("active") if isinstance(document, dict) else None
    if not isinstance(keys, dict) or not keys or not isinstance(active, str):
        raise ConfigurationError(
            f'Key file {path} must hold {{"active": "<id>", "keys": {{"<id>": "<base64>"}}}}.'
        )
    decoded = {
        _key_id(path, key_id): _decode(value, f"key {key_id!r} of {path}")
        for key_id, value in keys.items()
    }
    if active not in decoded:
        raise ConfigurationError(f"Key file {path}: the active key {active!r} is not in keys.")
    blind = document.get("blind_index")
    blind_key = None if blind is None else _decode(blind, f"blind_index of {path}")
    return KeyFile(active, decoded, blind_key)


def ensure_key_file(path: Path) -> bool:
    """Create a key file with a fresh key (and blind index key) unless one exists; ``True`` if
    this call created it. Two processes starting at once end up with the same file."""
    if path.exists():
        return False
    key_id = new_key_id()
    content = KeyFile(key_id, {key_id: generate_key()}, generate_key())
    path.parent.mkdir(parents=True, exist_ok=True)
    return _write(path, content, replace=False)


def rotate_key_file(path: Path) -> str:
    """Add a new key, make it active, keep the old ones; return the new key's id.

    The file is replaced atomically (a crash leaves the old or the new file, never half of
    one), under an exclusive lock so two rotations cannot each drop the other's key.
    """
    read_key_file(path)  # a missing or bad file is reported before a lock file is made
    with _locked(path):
        content = read_key_file(path)
        key_id = new_key_id()
        content.keys[key_id] = generate_key()
        content.active = key_id
        _write(path, content, replace=True)
    return key_id


def new_key_id() -> str:
    return "k" + secrets.token_hex(8)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _write(path: Path, content: KeyFile, *, replace: bool) -> bool:
    """Write to a private temporary file beside ``path``, then rename (``replace``) or link it
    into place (link fails if the file appeared meanwhile: the first writer wins)."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(orjson.dumps(content.document(), option=orjson.OPT_INDENT_2))
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temporary, path)
            return True
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


# --- encoding -----------------------------------------------------------------------------


def _key_id(path: Path, key_id: str) -> str:
    if not KEY_ID_PATTERN.fullmatch(key_id):
        raise ConfigurationError(
            f"Key file {path}: key id {key_id!r} must be 1-64 of A-Z a-z 0-9 _ -."
        )
    return key_id


def _decode(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise ConfigurationError(f"The {what} must be a base64 string.")
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigurationError(f"The {what} is not valid base64.") from exc
    if len(key) != KEY_BYTES:
        raise ConfigurationError(
            f"The {what} must be {KEY_BYTES} bytes (256 bits) once decoded, not {len(key)}."
        )
    return key


def _encode(key: bytes) -> str:
    return base64.b64encode(key).decode("ascii")


def _encode_all(keys: Mapping[str, bytes]) -> dict[str, str]:
    return {key_id: _encode(key) for key_id, key in keys.items()}
