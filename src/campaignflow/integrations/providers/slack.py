"""Slack incoming webhooks: ``slack.post_message`` (also what alerts are sent with).

An incoming-webhook URL is itself the secret (anyone holding it can post to the channel), so it
is a credential, the request carries no other authentication, and nothing prints the URL: error
messages name the host only (``PreparedRequest.host``).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from campaignflow.domain.circuit_breaker import BreakerPolicy
from campaignflow.integrations.connector import (
    Connector,
    ConnectorModel,
    NoAuth,
    Operation,
    OutboundRequest,
    RateLimits,
    RequestContext,
    operations,
)
from campaignflow.integrations.providers._common import (
    HTTPS_URL_PATTERN,
    JsonObject,
    Params,
    Secret,
    credential,
)


class SlackCredentials(ConnectorModel):
    webhook_url: Secret = Field(
        pattern=HTTPS_URL_PATTERN,
        description="The incoming webhook's URL (https://hooks.slack.com/services/…), from the "
        "Slack app's Incoming Webhooks page. It is the secret: keep it private.",
    )


class PostMessageParams(Params):
    """Posts a message to the webhook's channel."""

    text: str = Field(
        min_length=1,
        max_length=40_000,
        description="The message (Slack mrkdwn); with blocks, the notification's fallback text.",
    )
    blocks: Annotated[list[JsonObject], Field(min_length=1, max_length=50)] | None = Field(
        None, description="Block Kit layout blocks."
    )
    username: str | None = Field(
        None, min_length=1, max_length=80, description="Overrides the app's display name."
    )
    icon_emoji: str | None = Field(
        None,
        pattern=r"^:[a-z0-9_+'-]{1,100}:$",
        description="Overrides the app's icon, e.g. ':rocket:'.",
    )


def post_message_request(params: PostMessageParams, ctx: RequestContext) -> OutboundRequest:
    body: dict[str, Any] = {"text": params.text}
    optional: dict[str, Any] = {
        "blocks": params.blocks,
        "username": params.username,
        "icon_emoji": params.icon_emoji,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    url = credential(ctx.credentials, "webhook_url", "slack")
    return OutboundRequest("POST", url=url, json=body)


SLACK = Connector(
    provider="slack",
    title="Slack",
    category="messaging",
    description="Post messages to a Slack channel through an incoming webhook.",
    base_url="https://hooks.slack.com",  # informative: requests go to the webhook URL
    auth=NoAuth(),
    credentials=SlackCredentials,
    operations=operations(
        Operation(
            name="post_message",
            summary="Post a message to the webhook's channel.",
            params=PostMessageParams,
            request=post_message_request,
        ),
    ),
    # Slack allows about one message per second per incoming webhook, with short bursts.
    rate_limits=RateLimits(requests_per_minute=60, burst_limit=5),
    breaker=BreakerPolicy(),
    # No test request: every call to an incoming webhook posts a visible message.
    docs_url="https://api.slack.com/messaging/webhooks",
)
