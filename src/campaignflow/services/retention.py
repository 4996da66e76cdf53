"""Retention as a use case: a workspace's policy (read, replace) and the record of its purges.

The policy is checked against its format (every problem with its pointer) before it is stored;
reading a workspace that never set one answers the defaults, so what the API shows is always
what the purger applies.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from datetime import datetime
from typing import Any

from campaignflow.domain.pydantic_problems import validated
from campaignflow.domain.retention import DEFAULT_POLICY, DataClass, RetentionPolicy
from campaignflow.store.retention import RetentionStore


class RetentionService:
    def __init__(self, store: RetentionStore, now: Callable[[], datetime]) -> None:
        self._store = store
        self._now = now

    async def policy(self, workspace_id: str) -> RetentionPolicy:
        document = await self._store.policy_document(workspace_id)
        return DEFAULT_POLICY if document is None else RetentionPolicy.model_validate(document)

    async def replace(self, workspace_id: str, document: Any, by: str | None) -> RetentionPolicy:
        """Store a new policy (classes left out take their defaults); :class:`InvalidBody`
        with a pointer per problem."""
        policy = validated(RetentionPolicy, document)
        stored = policy.model_dump(by_alias=True, mode="json")
        await self._store.put_policy_document(workspace_id, stored, by=by, now=self._now())
        return policy

    async def runs(
        self,
        workspace_id: str,
        *,
        data_class: DataClass | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> builtins.list[dict[str, Any]]:
        return await self._store.runs(
            workspace_id, data_class=data_class, before=before, limit=limit
        )
