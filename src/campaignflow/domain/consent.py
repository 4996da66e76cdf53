"""Consent per contact and purpose: what a person agreed to, and how a new statement meets it.

The contact's consent *now* is one JSON document (``contacts.consent``), one entry per purpose::

    {"email_marketing": {"granted": true, "at": "2026-03-27T08:00:00Z", "source": "api"}}

Every statement worth keeping also goes to the history (``consent_records``) with its proof.
The state is the person's *latest* statement per purpose (by when it was made, not by when it
arrived): events arrive late and out of order, and a page view sent before the person
unsubscribed must not overturn the unsubscribe. What goes to the history:

- the **first statement** of a purpose, and every statement that **differs** from the state it
  meets (a late one too: it is still something the person said);
- an **explicit repeat** of the current decision (through the API: a form re-submitted, a
  preference centre saved), as a re-confirmation: evidence of a fresh, informed agreement
  (GDPR Art. 7(1));
- not a repeat carried by events: Segment's consent context rides on *every* event, and
  recording each would flood the history. It still moves the state's ``at`` (and source)
  forward, so a later-arriving statement made between the two cannot overturn it.

Pure: time comes in with the changes; nothing here reads a clock or a database.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from campaignflow.domain.events import Event

PURPOSE_PATTERN: Final = r"^[a-z][a-z0-9_]{0,63}$"
_PURPOSE = re.compile(PURPOSE_PATTERN)
_SEPARATORS = re.compile(r"[^a-z0-9]+")

EVENT_SOURCE: Final = "event"
API_SOURCE: Final = "api"
MAX_SOURCE_LENGTH: Final = 64  # consent_records.source
# Proof is evidence, not payload: a sender's oversized strings are cut, not stored whole.
_MAX_IP = 64
_MAX_USER_AGENT = 512
_MAX_FORM = 2048
_MAX_MESSAGE_ID = 200

ConsentDocument = dict[str, dict[str, Any]]
"""The ``contacts.consent`` JSON: ``{purpose: {"granted", "at", "source"}}``."""
ContactKey = tuple[str, str]


def is_purpose(name: object) -> bool:
    """Whether ``name`` is a purpose as stored: snake_case, a letter first, at most 64."""
    return isinstance(name, str) and _PURPOSE.fullmatch(name) is not None


def purpose_from_category(name: str) -> str | None:
    """A consent manager's category name as a purpose (``"Email Marketing"`` and
    ``"email-marketing"`` are ``email_marketing``), or ``None`` when nothing usable is left:
    Segment's destinations and OneTrust name categories for people, we store identifiers."""
    purpose = _SEPARATORS.sub("_", name.strip().lower()).strip("_")
    return purpose if _PURPOSE.fullmatch(purpose) else None


def format_instant(value: datetime) -> str:
    """An instant as the state document keeps it: ISO-8601 in UTC, ``Z`` suffix."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class ConsentProof:
    """What shows the person said so; every member optional (an import may have none)."""

    ip: str | None = None
    user_agent: str | None = None
    form: str | None = None  # the form or page it was given on
    api_client: str | None = None  # the credential that reported it (``api_key:<id>``)
    message_id: str | None = None  # the event that carried it

    def to_document(self) -> dict[str, str]:
        """camelCase members, absent ones left out (the ``consent_records.proof`` JSON)."""
        members = (
            ("ip", self.ip),
            ("userAgent", self.user_agent),
            ("form", self.form),
            ("apiClient", self.api_client),
            ("messageId", self.message_id),
        )
        return {name: value for name, value in members if value is not None}


@dataclass(frozen=True, slots=True)
class ConsentChange:
    """One statement of the person about one purpose. ``explicit``: made on purpose through the
    API, so a repeat of the current decision is still recorded (see the module's rules)."""

    purpose: str
    granted: bool
    source: str
    occurred_at: datetime
    proof: ConsentProof = field(default_factory=ConsentProof)
    explicit: bool = False


@dataclass(frozen=True, slots=True)
class PurposeConsent:
    """A purpose's current entry."""

    granted: bool
    at: datetime
    source: str


ConsentState = dict[str, PurposeConsent]


def read_state(document: Mapping[str, Any] | None) -> ConsentState:
    """The state a document holds; entries that do not parse are left out (the consent store
    writes the column only through :func:`to_document`, so there should be none)."""
    state: ConsentState = {}
    for purpose, entry in (document or {}).items():
        parsed = _entry(entry)
        if parsed is not None:
            state[purpose] = parsed
    return state


def _entry(entry: object) -> PurposeConsent | None:
    if not isinstance(entry, Mapping):
        return None
    granted, at, source = entry.get("granted"), entry.get("at"), entry.get("source")
    if not isinstance(granted, bool) or not isinstance(at, str) or not isinstance(source, str):
        return None
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        return None
    return PurposeConsent(granted, moment, source) if moment.tzinfo is not None else None


def to_document(state: Mapping[str, PurposeConsent]) -> ConsentDocument:
    return {
        purpose: {"granted": entry.granted, "at": format_instant(entry.at), "source": entry.source}
        for purpose, entry in sorted(state.items())
    }


def merge_documents(
    survivor: Mapping[str, Any] | None, absorbed: Mapping[str, Any] | None
) -> ConsentDocument:
    """The consent of two contacts found to be one person: per purpose, the later statement
    (the survivor's on a tie). A banner accepted while anonymous survives the identify that
    merges the visitor into the known contact, and a withdrawal made on either side stands
    if it is the latest."""
    state = read_state(survivor)
    for purpose, entry in read_state(absorbed).items():
        mine = state.get(purpose)
        if mine is None or entry.at > mine.at:
            state[purpose] = entry
    return to_document(state)


def granted_purposes(document: Mapping[str, Any] | None) -> dict[str, bool]:
    """``{purpose: granted}``: CEL's and the templates' ``contact.consent``. On the router's
    hot path, so it reads the document as is rather than parsing instants."""
    if not document:
        return {}
    return {
        purpose: entry.get("granted") is True
        for purpose, entry in document.items()
        if isinstance(entry, Mapping)
    }


# --------------------------------------------------------------------------- applying changes


@dataclass(frozen=True, slots=True)
class ConsentOutcome:
    state: ConsentState
    recorded: tuple[ConsentChange, ...]  # what goes to the history, in order
    changed: bool  # whether ``state`` differs from the state the changes met


def apply_changes(
    state: Mapping[str, PurposeConsent], changes: Iterable[ConsentChange]
) -> ConsentOutcome:
    """Apply ``changes`` in order to ``state`` (see the module's rules)."""
    current = dict(state)
    recorded: list[ConsentChange] = []
    changed = False
    for change in changes:
        entry = current.get(change.purpose)
        if entry is None or _is_newer(change, entry):
            current[change.purpose] = PurposeConsent(
                change.granted, change.occurred_at, change.source
            )
            changed = True
        if entry is None or change.explicit or change.granted != entry.granted:
            recorded.append(change)
    return ConsentOutcome(current, tuple(recorded), changed)


def _is_newer(change: ConsentChange, entry: PurposeConsent) -> bool:
    """Whether ``change`` is the purpose's latest statement: made later, or at the same
    instant with the other decision (the one that arrived last wins a tie)."""
    if change.occurred_at == entry.at:
        return change.granted != entry.granted
    return change.occurred_at > entry.at


@dataclass(frozen=True, slots=True)
class BatchConsent:
    """Changes of many contacts applied in one pass (the event router's batch)."""

    after: list[Mapping[str, Any] | None]  # per entry: its contact's document after it
    changed: dict[ContactKey, ConsentDocument]  # final documents of the contacts that changed
    recorded: list[tuple[ContactKey, ConsentChange]]  # history, in order


def apply_in_order(
    entries: Sequence[tuple[ContactKey, Mapping[str, Any] | None, Sequence[ConsentChange]]],
) -> BatchConsent:
    """Apply each entry's changes to its contact, in order: (contact, its document as read,
    changes). A contact's first entry gives its starting document; later entries of the same
    contact continue from where the earlier ones left it, so each entry sees the consent as of
    its own changes. An entry whose contact never changes keeps the very document given."""
    states: dict[ContactKey, ConsentState] = {}
    documents: dict[ContactKey, Mapping[str, Any] | None] = {}
    changed: dict[ContactKey, ConsentDocument] = {}
    after: list[Mapping[str, Any] | None] = []
    recorded: list[tuple[ContactKey, ConsentChange]] = []
    for key, document, changes in entries:
        documents.setdefault(key, document)
        if changes:
            state = states[key] if key in states else read_state(documents[key])
            outcome = apply_changes(state, changes)
            states[key] = outcome.state
            recorded.extend((key, change) for change in outcome.recorded)
            if outcome.changed:
                changed[key] = documents[key] = to_document(outcome.state)
        after.append(documents[key])
    return BatchConsent(after, changed, recorded)


# --------------------------------------------------------------------------- events


def event_changes(event: Event) -> list[ConsentChange]:
    """The consent an event carries: Segment's ``context.consent.categoryPreferences``
    (``{"Advertising": true, "Email Marketing": false}``; the same under native events).
    Categories that give no purpose, or values that are not booleans, are ignored: an event
    is accepted whole or not at all, and one odd category must not cost the rest. Two
    categories naming one purpose: the later one counts."""
    consent = event.context.get("consent")
    preferences = consent.get("categoryPreferences") if isinstance(consent, dict) else None
    if not isinstance(preferences, dict) or not preferences:
        return []
    decisions: dict[str, bool] = {}
    for name, value in preferences.items():
        purpose = purpose_from_category(name) if isinstance(value, bool) else None
        if purpose is not None:
            decisions.pop(purpose, None)
            decisions[purpose] = value
    if not decisions:
        return []
    proof = event_proof(event)
    return [
        ConsentChange(purpose, granted, EVENT_SOURCE, event.timestamp, proof)
        for purpose, granted in decisions.items()
    ]


def event_proof(event: Event) -> ConsentProof:
    """``context.ip``, ``context.userAgent``, the page's URL as the form, the messageId."""
    context = event.context
    page = context.get("page")
    return ConsentProof(
        ip=_text(context.get("ip"), _MAX_IP),
        user_agent=_text(context.get("userAgent"), _MAX_USER_AGENT),
        form=_text(page.get("url"), _MAX_FORM) if isinstance(page, dict) else None,
        message_id=_text(event.message_id, _MAX_MESSAGE_ID),
    )


def _text(value: object, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None
