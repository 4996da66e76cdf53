"""Response shape of the inbound webhook endpoint."""

from __future__ import annotations

from pydantic import Field

from campaignflow.api.schemas import ApiModel
from campaignflow.services.webhooks import WebhookOutcome


class RejectedWebhookEvent(ApiModel):
    index: int = Field(description="The event's position in the body.")
    errors: list[dict[str, object]] = Field(description="Each problem, with its JSON Pointer.")


class WebhookReceipt(ApiModel):
    accepted: int = Field(description="Events taken: published, and acted on.")
    ignored: int = Field(description="Events of types that mean nothing here (`processed` …).")
    rejected: list[RejectedWebhookEvent] = Field(
        description="Events refused, each with its problems (the others are still taken)."
    )
    suppressed: int = Field(description="Addresses this webhook added to the suppression list.")
    deliveries: int = Field(description="Delivery statuses of sent messages it advanced.")

    @classmethod
    def from_outcome(cls, outcome: WebhookOutcome) -> WebhookReceipt:
        return cls(
            accepted=outcome.accepted,
            ignored=outcome.ignored,
            rejected=[RejectedWebhookEvent.model_validate(item) for item in outcome.rejected],
            suppressed=outcome.suppressed,
            deliveries=outcome.deliveries,
        )
