"""Sensitive contact fields at rest: one sealed document per contact, a blind index for lookups.

The configured fields (``encryption.sensitive_contact_fields``, default ``email`` and ``phone``)
are the ``email`` column and every *top-level* trait whose key matches one of them, ignoring
case. They leave their columns and go into one JSON document, sealed for the contact
(``contact:<workspace>/<id>``), so reading a contact opens one value::

    {"email": "ada@example.com", "traits": {"phone": "+44 20 7946 0000"}}

The document is self-describing: opening restores whatever it holds, so a field later removed
from the list stays readable (and is written back in the clear on the contact's next write).
Nested traits (``address.phone``) are not matched: the contract is the top-level key.

Email identities never store the address: :meth:`ContactCipher.identity_value` gives the blind
index digest, whatever the list says (a lookup needs no plaintext, and changing the list must
not orphan identities). Phone numbers are sealed but not indexed: nothing looks contacts up by
phone.

Execution rows and the event log apply the same rule (:mod:`campaignflow.security.sealed_records`).

Pure apart from the sealer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson

from campaignflow.domain.contacts import EMAIL, ContactRecord, IdentityKey
from campaignflow.security.blind_index import BlindIndex
from campaignflow.security.envelope import RewrappingSealer
from campaignflow.security.key_file import (
    effective_encryption,
    load_blind_index,
    load_key_ring,
)

if TYPE_CHECKING:
    from campaignflow.config import Settings


def contact_context(workspace_id: str, contact_id: str) -> str:
    """What a contact's sensitive fields are sealed for (each part percent-encoded, so no two
    (workspace, id) pairs share a context)."""
    return f"contact:{quote(workspace_id, safe='')}/{quote(contact_id, safe='')}"


def snapshot_context(workspace_id: str, execution_id: str) -> str:
    """What an execution's sealed values (contact snapshot, input, started-by event) are
    sealed for."""
    return f"execution-contact:{quote(workspace_id, safe='')}/{quote(execution_id, safe='')}"


@dataclass(frozen=True, slots=True)
class StoredContact:
    """The columns of a ``contacts`` row that the cipher decides.

    ``document`` is the plaintext that ``sealed`` holds (kept in memory only): a write whose
    document is unchanged reuses the sealed value instead of sealing it again.
    """

    email: str | None  # in the clear only when email is not a sensitive field
    traits: dict[str, Any]  # the traits that are not sensitive
    sealed: str | None  # null when the contact has no sensitive value
    key_id: str | None  # the KEK wrapping ``sealed`` (rotation selects by it)
    document: bytes | None = field(default=None, repr=False, compare=False)


class ContactCipher:
    """Seals and opens the sensitive fields of contacts; decides which keys are sensitive."""

    def __init__(self, sealer: RewrappingSealer, index: BlindIndex, fields: Iterable[str]) -> None:
        self._sealer = sealer
        self._index = index
        self._fields = frozenset(name.casefold() for name in fields)

    @property
    def sealer(self) -> RewrappingSealer:
        return self._sealer

    def is_sensitive(self, name: str) -> bool:
        return name.casefold() in self._fields

    # ------------------------------------------------------------------ lookups

    def email_digest(self, normalized_email: str) -> str:
        """The blind index of an address (already normalised: stripped, lower-cased)."""
        return self._index.digest(EMAIL, normalized_email)

    def value_digest(self, canonical_value: str) -> str:
        """The blind index of a synced field's value (its canonical JSON): what a CRM sync
        keeps to tell a changed value from the one both sides agreed on, without the value."""
        return self._index.digest("crm-sync-value", canonical_value)

    def identity_value(self, kind: str, value: str) -> str:
        """What ``contact_identities.value`` holds for an identity: an email's digest, else
        the value itself."""
        return self.email_digest(value) if kind == EMAIL else value

    def stored_key(self, key: IdentityKey) -> IdentityKey:
        workspace, kind, value = key
        return (workspace, kind, self.identity_value(kind, value))

    # ------------------------------------------------------------------ contacts

    def seal(self, record: ContactRecord, previous: StoredContact | None = None) -> StoredContact:
        """The row's columns for ``record``; ``previous`` (what the row held, as
        :meth:`open` returned it) is reused when the sensitive values did not change."""
        secret_traits, traits = self.split(record.traits)
        secret: dict[str, Any] = {}
        email = record.email
        if email is not None and self.is_sensitive(EMAIL):
            secret[EMAIL], email = email, None
        if secret_traits:
            secret["traits"] = secret_traits
        if not secret:
            return StoredContact(email, traits, None, None)
        document = orjson.dumps(secret, option=orjson.OPT_SORT_KEYS)
        if previous is not None and previous.sealed is not None and previous.document == document:
            return StoredContact(email, traits, previous.sealed, previous.key_id, document)
        sealed = self._sealer.seal(document, context=contact_context(*record.key))
        return StoredContact(email, traits, sealed, self._sealer.key_id_of(sealed), document)

    def open(
        self, record: ContactRecord, sealed: str | None
    ) -> tuple[ContactRecord, StoredContact]:
        """``record`` as read from its columns, with the sealed fields put back; and the
        columns as they were (to pass to :meth:`seal` on the next write)."""
        if sealed is None:
            return record, StoredContact(record.email, record.traits, None, None)
        document = self._sealer.open(sealed, context=contact_context(*record.key))
        secret = orjson.loads(document)
        email = secret.get(EMAIL, record.email)
        traits = {**record.traits, **secret.get("traits", {})}
        key_id = self._sealer.key_id_of(sealed)
        stored = StoredContact(record.email, record.traits, sealed, key_id, document)
        opened = ContactRecord(
            record.workspace_id, record.id, record.user_id, email, record.timezone, traits,
            record.created_at, record.updated_at, record.last_seen_at, record.consent,
        )  # fmt: skip
        return opened, stored

    def has_sensitive(self, values: Mapping[str, Any]) -> bool:
        """Whether a top-level key of ``values`` is a sensitive field."""
        fields = self._fields
        return any(name.casefold() in fields for name in values)

    def split(self, values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(sensitive members, the others)."""
        secret: dict[str, Any] = {}
        rest: dict[str, Any] = {}
        for name, value in values.items():
            (secret if name.casefold() in self._fields else rest)[name] = value
        return secret, rest


def contact_cipher_from(settings: Settings) -> ContactCipher:
    """The cipher of the configured keys and fields (embedded mode: ``data_dir/keys.json``
    unless a key is configured): what the API, ``up``, the worker and the benchmarks build
    their stores with. Reads the key file; :class:`ConfigurationError` when no key is set."""
    encryption = effective_encryption(settings.encryption, settings.data_dir)
    return ContactCipher(
        load_key_ring(encryption),
        load_blind_index(encryption),
        encryption.sensitive_contact_fields,
    )
