"""The send-time gate: consent, frequency caps and quiet hours on every marketing message.

The connector executor asks :meth:`SendGate.admit` once per message step, after the suppression
list and before anything is sent. The gate reads the workspace's policy (cached for a few
seconds, forgotten at once when this process writes it), the contact's consent and time zone
*now* (a withdrawal takes effect on the next message, whatever the execution saw when it
started), and, when the channel has caps, decides and takes the slot in one locked transaction
(:meth:`SendPolicyStore.reserve`). The verdict is the pure :func:`decide`'s.

Ledger rows older than the workspace's longest cap window are purged from the reserve path, in
one bounded batch at most every ``purge_every_s`` per workspace and process
(:meth:`SendPolicyStore.purge` is public for a retention purger too).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import ValidationError

from campaignflow.domain.send_policy import (
    Recipient,
    SendPolicy,
    Verdict,
    consent_verdict,
    decide,
)
from campaignflow.engine.actions import ActionCall
from campaignflow.errors import CampaignflowError
from campaignflow.security.ttl_cache import TTLCache
from campaignflow.store.send_policy import SendPolicyStore, StoredPolicy

logger = logging.getLogger(__name__)

DEFAULT_CACHE_SECONDS = 5.0
DEFAULT_PURGE_EVERY_S = 600.0


class SendPolicies:
    """Read and write a workspace's policy; reads cached for ``cache_seconds``."""

    def __init__(
        self, store: SendPolicyStore, *, cache_seconds: float = DEFAULT_CACHE_SECONDS
    ) -> None:
        self._store = store
        self._cache: TTLCache[str, SendPolicy] = TTLCache(cache_seconds)

    @property
    def store(self) -> SendPolicyStore:
        return self._store

    async def get(self, workspace_id: str) -> SendPolicy:
        """The policy in force: the stored one, else the defaults (consent required)."""
        return await self._cache.get(workspace_id, lambda: self._load(workspace_id))

    async def stored(self, workspace_id: str) -> StoredPolicy | None:
        return await self._store.policy(workspace_id)

    async def put(self, workspace_id: str, policy: SendPolicy, updated_by: str | None) -> None:
        """Store the policy; this process applies it from the next message on (others within
        ``cache_seconds``)."""
        stored = policy.model_dump(by_alias=True, mode="json")
        await self._store.save_policy(workspace_id, stored, updated_by)
        self._cache.forget(workspace_id)

    def forget(self, workspace_id: str) -> None:
        self._cache.forget(workspace_id)

    async def _load(self, workspace_id: str) -> SendPolicy:
        stored = await self._store.policy(workspace_id)
        if stored is None:
            return SendPolicy()
        try:
            return SendPolicy.model_validate(stored.document)
        except ValidationError:  # written by an older format: the defaults are the safe side
            logger.exception(
                "workspace %s: stored send policy is invalid; using defaults", workspace_id
            )
            return SendPolicy()


@dataclass(frozen=True, slots=True)
class Admission:
    """The verdict on one message, and whether a ledger slot was taken for it (to give back
    with :meth:`SendGate.release` if the message then is not sent)."""

    verdict: Verdict
    reserved: bool = False


class SendGate:
    def __init__(
        self,
        policies: SendPolicies,
        *,
        now: Callable[[], datetime],
        purge_every_s: float = DEFAULT_PURGE_EVERY_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._policies = policies
        self._store = policies.store
        self._now = now
        self._purge_every_s = purge_every_s
        self._monotonic = monotonic
        self._purged: dict[str, float] = {}

    @property
    def policies(self) -> SendPolicies:
        return self._policies

    async def admit(self, call: ActionCall, channel: str) -> Admission:
        """The verdict on ``call``'s message on ``channel`` (a marketing message)."""
        policy = await self._policies.get(call.workspace_id)
        recipient = await self._recipient(call)
        refused = consent_verdict(policy, channel, recipient)
        if refused is not None:
            return Admission(refused)
        now = self._now()
        horizon = policy.ledger_horizon(channel)
        if horizon is None or call.contact_id is None:  # nothing to count against
            return Admission(decide(policy, channel, recipient, (), now))

        def verdict(sends: Sequence[datetime]) -> Verdict:
            return decide(policy, channel, recipient, sends, now)

        outcome, reserved = await self._store.reserve(
            call.workspace_id,
            call.contact_id,
            channel,
            call.idempotency_key,
            now=now,
            since=now - horizon,
            decide=verdict,
        )
        await self._purge_now_and_then(call.workspace_id, policy, now)
        return Admission(outcome, reserved)

    async def release(self, call: ActionCall) -> None:
        """The message of ``call`` was not sent: its slot counts no more."""
        await self._store.release(call.workspace_id, call.idempotency_key)

    async def _recipient(self, call: ActionCall) -> Recipient:
        if call.contact_id is None:
            return Recipient(known=False)
        subject = await self._store.subject(call.workspace_id, call.contact_id)
        if subject is None:
            return Recipient(known=False)
        return Recipient(known=True, consent=subject.consent, timezone=subject.timezone)

    async def _purge_now_and_then(
        self, workspace_id: str, policy: SendPolicy, now: datetime
    ) -> None:
        moment = self._monotonic()
        last = self._purged.get(workspace_id)
        if last is not None and moment - last < self._purge_every_s:
            return
        self._purged[workspace_id] = moment
        windows = [policy.ledger_horizon(cap.channel) for cap in policy.frequency_caps]
        longest = max((w for w in windows if w is not None), default=timedelta(0))
        try:
            await self._store.purge(workspace_id, now - longest)
        except CampaignflowError:  # housekeeping: the next round tries again
            logger.warning("purging the frequency ledger of %s failed", workspace_id, exc_info=True)
