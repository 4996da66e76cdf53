"""The consent-page grant's values: state, PKCE (RFC 7636's own vector), the authorization URL
per connector, the redirect URI rule, and the checks the callback makes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from campaignflow.errors import InvalidBody
from campaignflow.integrations.oauth_authorize import (
    CALLBACK_PATH,
    GRANT_LIFETIME,
    InvalidGrant,
    PendingGrant,
    authorization_url,
    check_pending,
    check_redirect_uri,
    code_exchange_form,
    connection_of,
    new_grant,
)
from campaignflow.integrations.providers.google_ads import GOOGLE_ADS
from campaignflow.integrations.providers.salesforce import SALESFORCE

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
REDIRECT = f"https://cf.example.com{CALLBACK_PATH}"
SF_SETTINGS = {"instanceUrl": "https://acme.my.salesforce.com"}


def test_rfc_7636s_example_verifier_gives_its_challenge() -> None:
    grant = PendingGrant("s", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", REDIRECT, NOW)
    assert grant.challenge == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_a_new_grant_names_its_connection_and_is_unguessable_and_short_lived() -> None:
    one, two = new_grant("conn1", REDIRECT, NOW), new_grant("conn1", REDIRECT, NOW)
    assert connection_of(one.state) == "conn1"
    assert one.state != two.state
    assert one.verifier != two.verifier
    assert 43 <= len(one.verifier) <= 128
    assert one.expires_at == NOW + GRANT_LIFETIME
    stored = one.stored()
    assert one.state not in stored.values()  # only its digest is kept


def test_the_salesforce_url_asks_for_a_refresh_token_on_the_orgs_login_host() -> None:
    grant = new_grant("conn1", REDIRECT, NOW)
    authorization = SALESFORCE.authorization
    assert authorization is not None
    for sandbox, host in ((False, "login.salesforce.com"), (True, "test.salesforce.com")):
        settings = SALESFORCE.settings.model_validate({**SF_SETTINGS, "sandbox": sandbox})
        url = urlsplit(authorization_url(authorization, settings, "client-1", grant))
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        assert (url.hostname, url.path) == (host, "/services/oauth2/authorize")
        assert query == {
            "response_type": "code",
            "client_id": "client-1",
            "redirect_uri": REDIRECT,
            "state": grant.state,
            "code_challenge": grant.challenge,
            "code_challenge_method": "S256",
            "scope": "api refresh_token",
        }


def test_the_google_url_asks_for_offline_access_with_a_fresh_consent() -> None:
    authorization = GOOGLE_ADS.authorization
    assert authorization is not None
    grant = new_grant("conn1", REDIRECT, NOW)
    url = authorization_url(authorization, GOOGLE_ADS.settings(), "client-1", grant)
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert query["access_type"] == "offline"
    assert query["prompt"] == "consent"
    assert query["scope"] == "https://www.googleapis.com/auth/adwords"


def test_the_code_is_exchanged_with_the_verifier_and_the_same_redirect() -> None:
    form = code_exchange_form({"client_id": "c", "client_secret": "s"}, "the-code", "v", REDIRECT)
    assert form == {
        "grant_type": "authorization_code",
        "code": "the-code",
        "redirect_uri": REDIRECT,
        "client_id": "c",
        "client_secret": "s",
        "code_verifier": "v",
    }


def test_the_callback_checks_the_state_and_the_time() -> None:
    grant = new_grant("conn1", REDIRECT, NOW)
    stored = grant.stored()
    assert check_pending(stored, grant.state, NOW) == (grant.verifier, REDIRECT)
    forged = grant.state[:-1] + ("A" if grant.state[-1] != "A" else "B")
    with pytest.raises(InvalidGrant, match="matches no"):
        check_pending(stored, forged, NOW)
    with pytest.raises(InvalidGrant, match="too long"):
        check_pending(stored, grant.state, NOW + GRANT_LIFETIME + timedelta(seconds=1))


@pytest.mark.parametrize("state", ["", "nodot", ".x", "c." + "x" * 10, "c" * 65 + "." + "x" * 43])
def test_a_state_campaignflow_did_not_issue_is_refused_before_any_lookup(state: str) -> None:
    with pytest.raises(InvalidGrant):
        connection_of(state)


@pytest.mark.parametrize(
    "uri",
    [REDIRECT, f"http://localhost:8080{CALLBACK_PATH}", f"http://127.0.0.1{CALLBACK_PATH}"],
)
def test_the_redirect_uri_is_this_servers_callback(uri: str) -> None:
    assert check_redirect_uri(uri) == uri


@pytest.mark.parametrize(
    "uri",
    [
        f"http://cf.example.com{CALLBACK_PATH}",  # plain http off the machine
        "https://cf.example.com/elsewhere",
        f"https://cf.example.com{CALLBACK_PATH}?next=https://evil.example",
        f"ftp://cf.example.com{CALLBACK_PATH}",
        CALLBACK_PATH,
    ],
)
def test_any_other_redirect_uri_is_refused_at_its_pointer(uri: str) -> None:
    with pytest.raises(InvalidBody) as caught:
        check_redirect_uri(uri)
    assert [p.pointer for p in caught.value.problems] == ["/redirectUri"]
