"""Records of processing (GDPR Art. 30), per person: what counts as processing, and on what basis.

Every use of a contact's data that leaves campaignflow or answers for it — a connector step or an
``http`` step that sent it to a third party, a push to a CRM, an export to the person, an
erasure passed on to a provider — is one entry naming the activity, the purpose, the legal basis
(Art. 6(1)) and the recipient. The basis follows from the
purpose alone, through :data:`LEGAL_BASIS_OF_PURPOSE`: one table a data protection officer can
read, instead of a decision scattered over the callers.

Pure: no clock (times are handed in), no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit


class LegalBasis(StrEnum):
    """Art. 6(1)(a)-(f): the ``processing_log.legal_basis`` column's check lists these."""

    CONSENT = "consent"
    CONTRACT = "contract"
    LEGAL_OBLIGATION = "legal_obligation"
    VITAL_INTERESTS = "vital_interests"
    PUBLIC_TASK = "public_task"
    LEGITIMATE_INTERESTS = "legitimate_interests"


class Activity(StrEnum):
    """What was done with the data (``processing_log.activity``)."""

    ACTION = "action"  # a connector step or an http step sent it to a third party
    CRM_SYNC = "crm.sync"  # a sync pushed the contact to a CRM
    EXPORT = "export"  # the person's data was handed to them (Art. 15, 20)
    ERASURE_PROPAGATED = "erasure.propagated"  # a provider was asked to erase them (Art. 17, 19)


class Purpose(StrEnum):
    """Why the data was used. ``marketing`` and ``transactional`` are a node's
    ``config.purpose``; the others belong to the platform's own activities."""

    MARKETING = "marketing"
    TRANSACTIONAL = "transactional"
    CRM_SYNC = "crm_sync"
    ACCESS_REQUEST = "access_request"
    ERASURE = "erasure"


LEGAL_BASIS_OF_PURPOSE: Mapping[Purpose, LegalBasis] = MappingProxyType(
    {
        # Art. 6(1)(a): a newsletter goes only to people who agreed to it.
        Purpose.MARKETING: LegalBasis.CONSENT,
        # Art. 6(1)(b): a receipt or a password reset is part of the service the person asked for.
        Purpose.TRANSACTIONAL: LegalBasis.CONTRACT,
        # Art. 6(1)(f): keeping the company's own CRM current with its customers.
        Purpose.CRM_SYNC: LegalBasis.LEGITIMATE_INTERESTS,
        # Art. 6(1)(c): answering an access or portability request is what Art. 15/20 require.
        Purpose.ACCESS_REQUEST: LegalBasis.LEGAL_OBLIGATION,
        # Art. 6(1)(c): Art. 17 and 19 require telling each recipient of the data to erase it.
        Purpose.ERASURE: LegalBasis.LEGAL_OBLIGATION,
    }
)

#: The recipient of an export: the person it is about.
DATA_SUBJECT = "data subject"
#: The longest recipient ``processing_log.recipient`` holds.
MAX_RECIPIENT = 200
_DEFAULT_PORTS = {"http": 80, "https": 443}


def legal_basis_of(purpose: str) -> LegalBasis:
    """The basis a purpose rests on; :class:`ValueError` for a purpose the table lacks (a new
    purpose needs a decision about its basis before anything may be recorded under it)."""
    try:
        return LEGAL_BASIS_OF_PURPOSE[Purpose(purpose)]
    except ValueError:
        raise ValueError(f"no legal basis is defined for the purpose {purpose!r}") from None


def recipient_of(provider: str, connection: str | None = None, *, url: str | None = None) -> str:
    """Who received the data: through a connection, the provider and which account of it
    (``sendgrid (mail)``); in a request to ``url`` (the built-in ``http`` action), the URL's
    origin, ``https://host[:port]``. Never the URL's user info, path or query: they may carry
    credentials or the person's own data, and the record must not become a copy of it.

    :class:`ValueError` for a URL that is not http(s) or has no host."""
    recipient = f"{provider} ({connection or 'no connection'})" if url is None else _origin(url)
    return recipient[:MAX_RECIPIENT]


def _origin(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port  # ValueError for a port out of range
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError("not an http(s) URL with a host")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname  # IPv6
    shown = port is not None and port != _DEFAULT_PORTS[parts.scheme]
    return f"{parts.scheme}://{host}:{port}" if shown else f"{parts.scheme}://{host}"


def took_effect(output: Any) -> bool:
    """Whether a connector step's output means the provider received the person's data.

    A step the send-time rules refused (``{"sent": false, "skipped": <rule>, …}``: suppressed,
    no consent, …) disclosed nothing to the recipient; the step log already says why it was
    skipped, so the processing log leaves it out rather than carrying a second record of it.
    """
    return not (isinstance(output, Mapping) and output.get("sent") is False and "skipped" in output)


@dataclass(frozen=True, slots=True)
class ProcessingEntry:
    """One processing of one contact's data, as it is recorded."""

    workspace_id: str
    contact_id: str
    occurred_at: datetime
    activity: str
    purpose: str
    legal_basis: LegalBasis
    recipient: str
    details: Mapping[str, Any] | None = field(default=None)

    @classmethod
    def of(
        cls,
        *,
        workspace_id: str,
        contact_id: str,
        occurred_at: datetime,
        activity: Activity,
        purpose: str,
        recipient: str,
        details: Mapping[str, Any] | None = None,
    ) -> ProcessingEntry:
        """An entry whose legal basis is the purpose's (see :func:`legal_basis_of`)."""
        return cls(
            workspace_id,
            contact_id,
            occurred_at,
            activity.value,
            purpose,
            legal_basis_of(purpose),
            recipient,
            details,
        )
