"""Connecting an account on the provider's consent page: OAuth 2.0 authorization code + PKCE, pure.

A connection of an OAuth connector (Salesforce, Google Ads, LinkedIn) holds its app's
``client_id`` and ``client_secret``; the refresh token comes from a person granting access on
the provider's page. Starting the grant makes a :class:`PendingGrant`:

* ``state`` is ``<connection id>.<32 random bytes>``: the callback finds the connection by the
  first part (the callback carries no credential of ours) and proves it is the grant this
  connection started by the second, compared as a SHA-256 digest in constant time;
* the PKCE ``verifier`` (RFC 7636, S256) never leaves the server: only its challenge goes in
  the authorization URL, so a code intercepted on its way back is useless without it;
* it expires after :data:`GRANT_LIFETIME` and is used once.

The pending grant (digest of the state, verifier, redirect URI, expiry) is kept in the secret
store beside the connection's credentials; this module only builds and checks values.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from ipaddress import ip_address
from typing import Final
from urllib.parse import urlencode, urlsplit

from campaignflow.domain.problems import Problem
from campaignflow.errors import ClientError, InvalidBody
from campaignflow.integrations.connector import ConnectionSettings, OAuthAuthorization

GRANT_LIFETIME: Final = timedelta(minutes=10)
CALLBACK_PATH: Final = "/api/v1/connections/authorize/callback"
_VERIFIER_BYTES = 48  # 64 characters of base64url: within RFC 7636's 43..128


class InvalidGrant(ClientError):
    """A callback that matches no pending grant: unknown, used, expired or forged."""


@dataclass(frozen=True, slots=True)
class PendingGrant:
    state: str
    verifier: str
    redirect_uri: str
    expires_at: datetime

    @property
    def challenge(self) -> str:
        """The S256 code challenge of :attr:`verifier`."""
        return _b64(hashlib.sha256(self.verifier.encode("ascii")).digest())

    def stored(self) -> dict[str, str]:
        """What the secret store keeps of it (the state only as its digest)."""
        return {
            "state_digest": state_digest(self.state),
            "verifier": self.verifier,
            "redirect_uri": self.redirect_uri,
            "expires_at": self.expires_at.isoformat(),
        }


def new_grant(connection_id: str, redirect_uri: str, now: datetime) -> PendingGrant:
    state = f"{connection_id}.{_b64(secrets.token_bytes(32))}"
    verifier = _b64(secrets.token_bytes(_VERIFIER_BYTES))
    return PendingGrant(state, verifier, redirect_uri, now + GRANT_LIFETIME)


def state_digest(state: str) -> str:
    return hashlib.sha256(state.encode("utf-8", "surrogatepass")).hexdigest()


def connection_of(state: str) -> str:
    """The connection id a state names; :class:`InvalidGrant` for anything else."""
    connection_id, dot, rest = state.partition(".")
    if not dot or not connection_id or len(connection_id) > 64 or len(rest) != 43:
        raise InvalidGrant("the state is not one campaignflow issued")
    return connection_id


def check_pending(stored: Mapping[str, str], state: str, now: datetime) -> tuple[str, str]:
    """(verifier, redirect URI) of the stored grant ``state`` answers; :class:`InvalidGrant`
    if it does not match or has expired."""
    expected = stored.get("state_digest", "")
    if not hmac.compare_digest(expected.encode(), state_digest(state).encode()):
        raise InvalidGrant("the state matches no authorization in progress")
    expires = stored.get("expires_at")
    if expires is None or datetime.fromisoformat(expires) <= now:
        raise InvalidGrant("the authorization took too long; start it again")
    return stored["verifier"], stored["redirect_uri"]


def check_redirect_uri(value: str) -> str:
    """The callback URL the provider sends the person back to. It must be this server's
    callback path over https (http only for a loopback host, for local use), as registered
    with the provider's app; anything else is a 422 pointing at ``/redirectUri``."""
    parts = urlsplit(value)
    problem = None
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        problem = "must be an absolute http(s) URL"
    elif parts.scheme == "http" and not _loopback(host):
        problem = "must use https (http only for localhost)"
    elif parts.path != CALLBACK_PATH or parts.query or parts.fragment:
        problem = f"must be this server's callback, ending in {CALLBACK_PATH}"
    if problem is not None:
        raise InvalidBody([Problem(("redirectUri",), problem, "invalid_redirect_uri")])
    return value


def authorization_url(
    authorization: OAuthAuthorization,
    settings: ConnectionSettings,
    client_id: str,
    grant: PendingGrant,
) -> str:
    """The provider's consent page for this grant."""
    base = (
        authorization.authorize_url_for(settings)
        if authorization.authorize_url_for is not None
        else authorization.authorize_url
    )
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": grant.redirect_uri,
        "state": grant.state,
        "code_challenge": grant.challenge,
        "code_challenge_method": "S256",
    }
    if authorization.scopes:
        query["scope"] = " ".join(authorization.scopes)
    query.update(authorization.extra_params)
    separator = "&" if urlsplit(base).query else "?"
    return f"{base}{separator}{urlencode(query)}"


def code_exchange_form(
    credentials: Mapping[str, str], code: str, verifier: str, redirect_uri: str
) -> dict[str, str]:
    """The token request that turns the code into tokens (RFC 6749 §4.1.3, RFC 7636 §4.5)."""
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": credentials.get("client_id", ""),
        "client_secret": credentials.get("client_secret", ""),
        "code_verifier": verifier,
    }


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False
