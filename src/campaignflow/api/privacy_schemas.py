"""Request and response shapes of a workspace's privacy settings: its send-time policy.

The body of ``PUT /privacy/send-policy`` is :class:`~campaignflow.domain.send_policy.SendPolicy`
itself (camelCase, unknown members refused), and ``GET`` answers the same shape plus who last
changed it, so a client reads, edits and writes back one document.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from campaignflow.domain.send_policy import SendPolicy

#: Members of the request body, to suggest a spelling for an unknown one.
FIELDS = ("consent", "frequencyCaps", "quietHours")


class SendPolicyOut(SendPolicy):
    """The policy in force; the defaults (consent required for email and SMS marketing, no
    caps, no quiet hours) until the workspace sets one."""

    updated_by: str | None = Field(None, description="Who last set it; null: the defaults.")
    updated_at: datetime | None = Field(None, description="When; null: the defaults.")

    @classmethod
    def of(
        cls, policy: SendPolicy, updated_by: str | None, updated_at: datetime | None
    ) -> SendPolicyOut:
        return cls(
            consent=policy.consent,
            frequency_caps=policy.frequency_caps,
            quiet_hours=policy.quiet_hours,
            updated_by=updated_by,
            updated_at=updated_at,
        )
