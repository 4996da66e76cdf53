"""Microsoft Teams: ``teams.post_message`` to a channel's incoming webhook or Workflows webhook.

Both kinds of webhook take the same payload, a ``message`` whose ``attachments`` hold one
Adaptive Card (Microsoft Learn, "Create an Incoming Webhook" and "Post a workflow when a webhook
request is received"); the older MessageCard format is not accepted by Workflows, so it is not
offered. A step gives either its own card or plain text, from which a card is built.

The webhook URL is itself the secret (anyone holding it can post to the channel), so it is a
credential, the request carries no other authentication, and nothing prints the URL: error
messages name the host only. Teams takes no idempotency key; a webhook post has no id to return.
"""

from __future__ import annotations

from typing import Any, Self

import orjson
from pydantic import Field, model_validator

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

PROVIDER = "teams"
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
# Teams renders Adaptive Cards up to 1.5 in channels; 1.4 is what mobile clients show too.
TEXT_CARD_VERSION = "1.4"
# Microsoft: a message sent to a webhook may be at most 28 KB.
MAX_PAYLOAD_BYTES = 28 * 1024


class TeamsCredentials(ConnectorModel):
    webhook_url: Secret = Field(
        pattern=HTTPS_URL_PATTERN,
        description="The channel's webhook URL: a Workflows 'When a Teams webhook request is "
        "received' trigger URL, or an incoming webhook URL. It is the secret: keep it private.",
    )


class PostMessageParams(Params):
    """Posts an Adaptive Card to the webhook's channel: the step's own card, or one built from
    plain text."""

    text: str | None = Field(
        None,
        min_length=1,
        max_length=20_000,
        description="Plain text (Adaptive Card markdown: **bold**, _italic_, [links](url), "
        "lists); a card is built from it. Give text or card.",
    )
    title: str | None = Field(
        None, min_length=1, max_length=200, description="A bold heading above the text."
    )
    card: JsonObject | None = Field(
        None,
        description="An Adaptive Card (type 'AdaptiveCard', a version, a body of elements), "
        "sent as it is; design one at adaptivecards.microsoft.com/designer.",
    )

    @model_validator(mode="after")
    def _text_or_card(self) -> Self:
        if (self.text is None) == (self.card is None):
            raise ValueError("give text or card, not both")
        if self.card is not None:
            if self.title is not None:
                raise ValueError("title goes with text; a card carries its own heading")
            _check_card(self.card)
        if len(orjson.dumps(payload(self))) > MAX_PAYLOAD_BYTES:
            raise ValueError(f"the message is larger than Teams' {MAX_PAYLOAD_BYTES // 1024} KB")
        return self


def _check_card(card: JsonObject) -> None:
    """What every Adaptive Card has. Teams does not render a card without it, and a webhook
    may still answer 2xx, so the step would report a post that nobody sees."""
    if card.get("type") != "AdaptiveCard":
        raise ValueError("card.type must be 'AdaptiveCard'")
    version = card.get("version")
    if not (isinstance(version, str) and version in {"1.0", "1.1", "1.2", "1.3", "1.4", "1.5"}):
        raise ValueError("card.version must be an Adaptive Card version Teams renders, 1.0 to 1.5")
    body = card.get("body")
    if not (isinstance(body, list) and body):
        raise ValueError("card.body must be a non-empty array of elements")
    if not all(isinstance(e, dict) and isinstance(e.get("type"), str) for e in body):
        raise ValueError("every element of card.body must be an object with a type")


def text_card(text: str, title: str | None) -> dict[str, Any]:
    """The card a plain-text step posts: an optional bold heading, then the text, wrapped."""
    body: list[dict[str, Any]] = []
    if title is not None:
        body.append(
            {"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium", "wrap": True}
        )
    body.append({"type": "TextBlock", "text": text, "wrap": True})
    return {
        "$schema": CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": TEXT_CARD_VERSION,
        "body": body,
        "msteams": {"width": "Full"},
    }


def payload(params: PostMessageParams) -> dict[str, Any]:
    card = params.card if params.card is not None else text_card(params.text or "", params.title)
    attachment = {"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card}
    return {"type": "message", "attachments": [attachment]}


def post_message_request(params: PostMessageParams, ctx: RequestContext) -> OutboundRequest:
    url = credential(ctx.credentials, "webhook_url", PROVIDER)
    return OutboundRequest("POST", url=url, json=payload(params))


TEAMS = Connector(
    provider=PROVIDER,
    title="Microsoft Teams",
    category="messaging",
    description="Post Adaptive Cards (or plain text) to a Microsoft Teams channel through a "
    "Workflows or incoming webhook.",
    base_url="https://outlook.office.com",  # informative: requests go to the webhook URL
    auth=NoAuth(),
    credentials=TeamsCredentials,
    operations=operations(
        Operation(
            name="post_message",
            summary="Post a card or text to the webhook's channel.",
            params=PostMessageParams,
            request=post_message_request,
        ),
    ),
    # Microsoft Learn, "Create an Incoming Webhook", rate limiting for connectors: at most 4
    # posts per second, 60 per 30 s, 100 per hour and 1,800 per day per webhook. A bucket of
    # 3 refilled at 1 a minute stays within every window (≤ 4 in 1 s, ≤ 63 in an hour,
    # ≤ 1,443 in a day); connections whose Workflows flow allows more raise requestsPerMinute.
    rate_limits=RateLimits(requests_per_minute=1, burst_limit=3),
    breaker=BreakerPolicy(),
    # No test request: every call to a webhook posts a visible message.
    docs_url="https://learn.microsoft.com/microsoftteams/platform/webhooks-and-connectors/how-to/add-incoming-webhook",
)
