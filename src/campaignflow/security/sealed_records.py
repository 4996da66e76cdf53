"""Sensitive values in execution rows and in the event log, sealed at rest.

The rule is the contacts' one (:class:`~campaignflow.security.contact_fields.ContactCipher`):
a *top-level* key matching a configured field, ignoring case. It applies to

- an execution's ``contact`` snapshot and its ``input``, and the event that started it (held in
  ``state["event"]`` for templates): all sealed into one value per execution
  (``execution-contact:<workspace>/<id>``), opened whenever the execution is loaded;
- an event's ``properties``, ``traits`` and ``context.traits`` in the event log: one value per
  event (``event:<workspace>/<messageId>``), opened only on demand (GDPR access and export).

The started-by event is written back by every worker commit, so it is stripped again then, with
no new seal: ``state[SEALED_EVENT]`` names the event the sealed value holds, and only that event
is stripped. An event a ``wait_for_event`` takes later replaces it unsealed, as it is in the
step log and the task that carried it (workflow data, like step outputs).

Pure apart from the sealer. Values without a sensitive key cost a scan of their keys, no seal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

from campaignflow.security.contact_fields import ContactCipher, snapshot_context

SEALED_EVENT = "sealedEvent"
"""The member of an execution's state naming the event (``messageId``) its sealed value holds."""

_SECTIONS = ("properties", "traits")
_CONTEXT_TRAITS = "context.traits"


def event_context(workspace_id: str, message_id: str) -> str:
    """What an event's sensitive values are sealed for."""
    return f"event:{quote(workspace_id, safe='')}/{quote(message_id, safe='')}"


# --------------------------------------------------------------------------- events


def split_event(cipher: ContactCipher, payload: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """(``payload`` without its sensitive keys, those keys by section). ``payload`` itself
    comes back, uncopied, when it holds none."""
    secret: dict[str, Any] = {}
    rest: dict[str, Any] | None = None
    for section in _SECTIONS:
        hidden, kept = _split_section(cipher, payload.get(section))
        if hidden:
            rest = dict(payload) if rest is None else rest
            rest[section], secret[section] = kept, hidden
    context = payload.get("context")
    if isinstance(context, dict):
        hidden, kept = _split_section(cipher, context.get("traits"))
        if hidden:
            rest = dict(payload) if rest is None else rest
            rest["context"], secret[_CONTEXT_TRAITS] = {**context, "traits": kept}, hidden
    return (payload if rest is None else rest), secret


def merge_event(payload: Mapping[str, Any], secret: Mapping[str, Any]) -> dict[str, Any]:
    """``payload`` with the sections :func:`split_event` took put back."""
    merged = dict(payload)
    for section in _SECTIONS:
        if section in secret:
            merged[section] = {**(merged.get(section) or {}), **secret[section]}
    if _CONTEXT_TRAITS in secret:
        context = dict(merged.get("context") or {})
        context["traits"] = {**(context.get("traits") or {}), **secret[_CONTEXT_TRAITS]}
        merged["context"] = context
    return merged


def seal_event_payload(
    cipher: ContactCipher, workspace_id: str, message_id: str, payload: Mapping[str, Any]
) -> tuple[Any, str | None]:
    """(the payload to store, the sealed value or ``None`` when it held nothing sensitive)."""
    rest, secret = split_event(cipher, payload)
    if not secret:
        return rest, None
    sealed = cipher.sealer.seal(
        orjson.dumps(secret), context=event_context(workspace_id, message_id)
    )
    return rest, sealed


def open_event_payload(
    cipher: ContactCipher,
    workspace_id: str,
    message_id: str,
    payload: Mapping[str, Any],
    sealed: str | None,
) -> dict[str, Any]:
    """A stored event's payload as it was received (``events.payload`` + ``events.sealed``)."""
    if sealed is None:
        return dict(payload)
    document = cipher.sealer.open(sealed, context=event_context(workspace_id, message_id))
    return merge_event(payload, orjson.loads(document))


# --------------------------------------------------------------------------- executions


@dataclass(frozen=True, slots=True)
class StoredExecution:
    """The columns of an ``executions`` row that sealing decides."""

    contact: dict[str, Any]
    input: dict[str, Any]
    state: dict[str, Any]
    sealed: str | None
    key_id: str | None


def seal_execution(
    cipher: ContactCipher,
    workspace_id: str,
    execution_id: str,
    *,
    contact: Mapping[str, Any],
    input: Mapping[str, Any],
    state: Mapping[str, Any],
) -> StoredExecution:
    """The row's columns for a new execution (or one written before sealing existed)."""
    document: dict[str, Any] = {}
    hidden, stored_contact = cipher.split(contact)
    if hidden:
        document["contact"] = hidden
    hidden, stored_input = cipher.split(input)
    if hidden:
        document["input"] = hidden
    stored_state = dict(state)
    event = state.get("event")
    if isinstance(event, dict):
        stored_event, hidden = split_event(cipher, event)
        if hidden:
            document["event"] = hidden
            stored_state["event"] = stored_event
            stored_state[SEALED_EVENT] = event.get("messageId")
    if not document:
        return StoredExecution(stored_contact, stored_input, stored_state, None, None)
    context = snapshot_context(workspace_id, execution_id)
    sealed = cipher.sealer.seal(orjson.dumps(document), context=context)
    return StoredExecution(
        stored_contact, stored_input, stored_state, sealed, cipher.sealer.key_id_of(sealed)
    )


def open_execution(
    cipher: ContactCipher, workspace_id: str, execution_id: str, row: dict[str, Any]
) -> dict[str, Any]:
    """Put the sealed values of a row's mapping back (``row`` is changed and returned; its
    ``sealed`` member is removed)."""
    sealed = row.pop("sealed", None)
    if sealed is None:
        return row
    context = snapshot_context(workspace_id, execution_id)
    document = orjson.loads(cipher.sealer.open(sealed, context=context))
    if "contact" in document:
        row["contact"] = {**row["contact"], **document["contact"]}
    if "input" in document:
        row["input"] = {**row["input"], **document["input"]}
    event = _sealed_event(row["state"])
    if "event" in document and event is not None:
        row["state"] = {**row["state"], "event": merge_event(event, document["event"])}
    return row


def stored_state(cipher: ContactCipher, state: dict[str, Any]) -> dict[str, Any]:
    """The state to write back: the sealed event stripped again (no new seal)."""
    event = _sealed_event(state)
    if event is None:
        return state
    stripped, _ = split_event(cipher, event)
    return {**state, "event": stripped}


def _sealed_event(state: Mapping[str, Any]) -> dict[str, Any] | None:
    """The state's event if it is the one the sealed value holds, else ``None``."""
    marker, event = state.get(SEALED_EVENT), state.get("event")
    if marker is None or not isinstance(event, dict) or event.get("messageId") != marker:
        return None
    return event


def _split_section(cipher: ContactCipher, values: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    if not isinstance(values, dict) or not values or not cipher.has_sensitive(values):
        return {}, values if isinstance(values, dict) else {}
    return cipher.split(values)
