"""The connectors campaignflow ships, one module each, as plain values.

Nothing is registered at import time: :func:`builtin_connectors` returns the catalogue, and
whoever needs connectors (the executor, the catalog API, the validator) takes it from there.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from campaignflow.integrations.connector import Connector
from campaignflow.integrations.providers.amazon_ses import AMAZON_SES
from campaignflow.integrations.providers.generic_http import HTTP
from campaignflow.integrations.providers.google_ads import GOOGLE_ADS
from campaignflow.integrations.providers.hubspot import HUBSPOT
from campaignflow.integrations.providers.klaviyo import KLAVIYO
from campaignflow.integrations.providers.linkedin_ads import LINKEDIN_ADS
from campaignflow.integrations.providers.mailchimp_marketing import MAILCHIMP_MARKETING
from campaignflow.integrations.providers.mailchimp_transactional import MAILCHIMP_TRANSACTIONAL
from campaignflow.integrations.providers.mailgun import MAILGUN
from campaignflow.integrations.providers.meta_ads import META_ADS
from campaignflow.integrations.providers.pipedrive import PIPEDRIVE
from campaignflow.integrations.providers.postmark import POSTMARK
from campaignflow.integrations.providers.salesforce import SALESFORCE
from campaignflow.integrations.providers.sendgrid import SENDGRID
from campaignflow.integrations.providers.slack import SLACK
from campaignflow.integrations.providers.teams import TEAMS
from campaignflow.integrations.providers.twilio import TWILIO
from campaignflow.integrations.providers.webhook import WEBHOOK

_BUILTIN: tuple[Connector, ...] = (
    SENDGRID,
    MAILCHIMP_TRANSACTIONAL,
    MAILCHIMP_MARKETING,
    HUBSPOT,
    PIPEDRIVE,
    SALESFORCE,
    MAILGUN,
    POSTMARK,
    AMAZON_SES,
    KLAVIYO,
    TWILIO,
    SLACK,
    TEAMS,
    META_ADS,
    GOOGLE_ADS,
    LINKEDIN_ADS,
    HTTP,
    WEBHOOK,
)


def builtin_connectors() -> Mapping[str, Connector]:
    """Provider name → connector, read-only."""
    return MappingProxyType({connector.provider: connector for connector in _BUILTIN})
