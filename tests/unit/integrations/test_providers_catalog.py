"""The built-in connectors as a whole: names, declarations and published schemas."""

from __future__ import annotations

import json
import re

import pytest
from pydantic import BaseModel

from campaignflow.integrations.connector import ConnectionSettings, ConnectorModel
from campaignflow.integrations.providers import builtin_connectors

ACTION = re.compile(r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*")
CONNECTORS = builtin_connectors()


def test_the_catalogue_lists_every_connector_and_operation() -> None:
    assert {
        f"{connector.provider}.{name}"
        for connector in CONNECTORS.values()
        for name in connector.operations
    } == {
        "sendgrid.send_email",
        "sendgrid.upsert_contacts",
        "sendgrid.create_list",
        "sendgrid.suppress_global",
        "mailchimp_transactional.send_message",
        "mailchimp_transactional.send_template",
        "mailchimp_transactional.reject_add",
        "mailchimp_marketing.upsert_member",
        "mailchimp_marketing.update_tags",
        "mailchimp_marketing.delete_member_permanently",
        "mailchimp_marketing.find_member_lists",
        "hubspot.send_transactional_email",
        "hubspot.upsert_contact",
        "hubspot.upsert_contacts",
        "hubspot.create_note",
        "hubspot.associate",
        "hubspot.gdpr_delete",
        "salesforce.upsert_contact",
        "salesforce.upsert_lead",
        "salesforce.create_task",
        "salesforce.upsert_records",
        "pipedrive.find_person",
        "pipedrive.create_person",
        "pipedrive.update_person",
        "pipedrive.create_deal",
        "pipedrive.update_deal",
        "pipedrive.add_activity",
        "pipedrive.add_note",
        "pipedrive.delete_person",
        "meta_ads.add_audience_users",
        "meta_ads.remove_audience_users",
        "meta_ads.send_conversion_events",
        "google_ads.create_customer_match_job",
        "google_ads.add_customer_match_operations",
        "google_ads.run_customer_match_job",
        "google_ads.upload_click_conversions",
        "linkedin_ads.add_segment_users",
        "linkedin_ads.remove_segment_users",
        "linkedin_ads.send_conversion_events",
        "twilio.send_sms",
        "mailgun.send_message",
        "postmark.send_email",
        "postmark.send_email_batch",
        "postmark.send_with_template",
        "amazon_ses.send_email",
        "klaviyo.upsert_profile",
        "klaviyo.create_event",
        "klaviyo.subscribe_profiles",
        "slack.post_message",
        "teams.post_message",
        "http.request",
        "webhook.post",
    }


def test_the_crm_connectors_and_only_they_sync() -> None:
    syncing = {c.provider for c in CONNECTORS.values() if c.sync is not None}
    assert syncing == {"hubspot", "salesforce", "pipedrive"}
    assert all(CONNECTORS[name].category == "crm" for name in syncing)


def test_the_catalogue_is_read_only_and_keyed_by_provider() -> None:
    with pytest.raises(TypeError):
        CONNECTORS["acme"] = CONNECTORS["http"]  # type: ignore[index]
    assert all(name == connector.provider for name, connector in CONNECTORS.items())


@pytest.mark.parametrize("provider", sorted(CONNECTORS))
def test_action_names_are_valid_and_not_the_builtin_http(provider: str) -> None:
    for name in CONNECTORS[provider].operations:
        assert ACTION.fullmatch(f"{provider}.{name}")


def _models() -> list[tuple[str, type[BaseModel]]]:
    found: list[tuple[str, type[BaseModel]]] = []
    for connector in CONNECTORS.values():
        found += [(f"{connector.provider} credentials", connector.credentials)]
        found += [(f"{connector.provider} settings", connector.settings)]
        found += [
            (f"{connector.provider}.{name}", operation.params)
            for name, operation in connector.operations.items()
        ]
    return found


@pytest.mark.parametrize(("where", "model"), _models(), ids=[w for w, _ in _models()])
def test_every_model_refuses_unknown_keys_and_documents_every_field(
    where: str, model: type[BaseModel]
) -> None:
    assert issubclass(model, ConnectorModel)
    assert model.model_config.get("extra") == "forbid"
    undocumented = [name for name, info in model.model_fields.items() if not info.description]
    assert undocumented == [], where
    json.dumps(model.model_json_schema(by_alias=True))  # publishable as JSON


@pytest.mark.parametrize("provider", sorted(CONNECTORS))
def test_parameters_are_camel_case_on_the_wire(provider: str) -> None:
    for operation in CONNECTORS[provider].operations.values():
        schema = operation.params.model_json_schema(by_alias=True)
        assert all("_" not in name for name in schema["properties"]), operation.name


def test_settings_extend_the_common_connection_settings() -> None:
    assert all(issubclass(c.settings, ConnectionSettings) for c in CONNECTORS.values())


def test_secrets_are_write_only_in_the_published_schemas() -> None:
    secrets = {
        "sendgrid": ["token"],
        "mailchimp_transactional": ["api_key", "webhook_key"],
        "mailchimp_marketing": ["api_key", "webhook_secret"],
        "hubspot": ["token", "client_secret"],
        "salesforce": ["client_secret", "refresh_token"],
        "pipedrive": ["api_key"],
        "twilio": ["auth_token", "api_key_secret"],
        "teams": ["webhook_url"],
        "mailgun": ["api_key", "webhook_signing_key"],
        "postmark": ["api_key"],
        "amazon_ses": ["secret_access_key", "session_token"],
        "klaviyo": ["api_key"],
        "meta_ads": ["token", "app_secret"],
        "google_ads": ["client_secret", "refresh_token", "developer_token"],
        "slack": ["webhook_url"],
        "http": ["token", "password", "api_key"],
        "webhook": ["secret"],
    }
    for provider, names in secrets.items():
        properties = CONNECTORS[provider].credentials.model_json_schema()["properties"]
        for name in names:
            options = [properties[name], *properties[name].get("anyOf", [])]
            assert any(option.get("writeOnly") for option in options), (provider, name)


def test_only_message_sending_operations_declare_recipients() -> None:
    senders = {
        f"{c.provider}.{name}"
        for c in CONNECTORS.values()
        for name, operation in c.operations.items()
        if operation.sends_message
    }
    assert senders == {
        "sendgrid.send_email",
        "mailchimp_transactional.send_message",
        "mailchimp_transactional.send_template",
        "hubspot.send_transactional_email",
        "twilio.send_sms",
        "mailgun.send_message",
        "postmark.send_email",
        "postmark.send_email_batch",
        "postmark.send_with_template",
        "amazon_ses.send_email",
    }
