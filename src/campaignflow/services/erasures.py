"""Erasures as a use case: ask for one (by contact id, email or userId), read how it goes.

The request only queues a job; :mod:`campaignflow.compliance.erasure` carries it out. An
email or userId is sealed into the job (its worker needs it to find the person's stream
entries and, for propagation, to name them to providers) and shown only as a keyed digest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from campaignflow.domain.contacts import normalize_email
from campaignflow.errors import InvalidValue
from campaignflow.store.erasure import ErasureJob, ErasureStore, Identities, identity_digest
from campaignflow.store.workflows import utc_now

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class ErasureRequest:
    contact_id: str | None = None
    email: str | None = None
    user_id: str | None = None
    propagate: bool = False
    suppress: bool = True


@dataclass(frozen=True, slots=True)
class ErasureService:
    store: ErasureStore
    clock: Clock = utc_now

    async def request(
        self, workspace_id: str, asked: ErasureRequest, requested_by: str | None
    ) -> ErasureJob:
        """Queue the erasure of one person; :class:`InvalidValue` unless exactly one subject."""
        given = [v for v in (asked.contact_id, asked.email, asked.user_id) if v is not None]
        if len(given) != 1:
            raise InvalidValue("Give exactly one of contactId, email and userId.")
        cipher = self.store.cipher
        identities: Identities | None = None
        if asked.contact_id is not None:
            subject = {"contactId": asked.contact_id}
        elif asked.email is not None:
            email = normalize_email(asked.email)
            if email is None:
                raise InvalidValue("The email is not an address.")
            subject = {"emailDigest": identity_digest(cipher, "email", email)}
            identities = Identities(emails=(email,))
        else:
            user_id = str(asked.user_id)
            subject = {"userIdDigest": identity_digest(cipher, "user_id", user_id)}
            identities = Identities(user_ids=(user_id,))
        options = {"propagate": asked.propagate, "suppress": asked.suppress}
        return await self.store.create(
            workspace_id,
            subject,
            options,
            identities=identities,
            requested_by=requested_by,
            now=self.clock(),
        )

    async def get(self, workspace_id: str, erasure_id: str) -> ErasureJob:
        return await self.store.get(workspace_id, erasure_id)

    async def list_erasures(
        self, workspace_id: str, *, before: str | None, limit: int
    ) -> list[ErasureJob]:
        return await self.store.list(workspace_id, before=before, limit=limit)
