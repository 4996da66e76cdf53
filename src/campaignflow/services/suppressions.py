"""The suppression list as a use case: check an address, add one by hand, lift one, list them.

Webhooks feed the list (``services/webhooks.py``); the executor asks
:meth:`SuppressionStore.suppressed` before it sends. An address is accepted here in any case
and with surrounding spaces, as contact emails are: the list is keyed by the normalised form.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from campaignflow.domain.contacts import normalize_email
from campaignflow.errors import Conflict, InvalidField
from campaignflow.store.suppressions import NewSuppression, SuppressionRecord, SuppressionStore


@dataclass(frozen=True, slots=True)
class SuppressionService:
    store: SuppressionStore

    async def check(self, workspace_id: str, email: str) -> SuppressionRecord | None:
        """The address's entry, or ``None`` when mail may go to it."""
        return await self.store.get(workspace_id, email)

    async def add(
        self, workspace_id: str, email: str, *, reason: str = "manual"
    ) -> tuple[SuppressionRecord, bool]:
        """Suppress the address by hand; (its entry, whether this call added it). An address
        already suppressed keeps its first entry and reason."""
        address = normalize_email(email)
        if address is None:
            raise InvalidField(f"{email!r} is not an email address.", "/email")
        added = await self.store.add(
            workspace_id, [NewSuppression(email=address, reason=reason, source="api")]
        )
        record = await self.store.get(workspace_id, address)
        if record is None:
            raise Conflict("The address was lifted from the list meanwhile; add it again.")
        return record, bool(added)

    async def remove(self, workspace_id: str, email: str) -> SuppressionRecord:
        """Lift the suppression; :class:`NotFound` if the address is not suppressed."""
        return await self.store.remove(workspace_id, email)

    async def list_suppressions(
        self,
        workspace_id: str,
        *,
        reason: str | None = None,
        before: tuple[datetime, str] | None = None,
        limit: int = 50,
    ) -> list[SuppressionRecord]:
        return await self.store.list(workspace_id, reason=reason, before=before, limit=limit)
