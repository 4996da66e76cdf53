"""The OAuth 2.0 authorization server: token (RFC 6749 §4.4), introspection (RFC 7662),
revocation (RFC 7009) and the JWKS (RFC 7517), at the root rather than under ``/api/v1``.

These endpoints speak the OAuth error format (``{"error": …, "error_description": …}``), not
problem+json, because OAuth client libraries parse that. Bodies are form-encoded and parsed here:
a parameter sent twice is refused (RFC 6749 §3.2), as is a client authenticating two ways at once.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Annotated, Any
from urllib.parse import parse_qsl, unquote_plus

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from campaignflow.api.auth import request_address
from campaignflow.api.body import read_body
from campaignflow.api.oauth_schemas import (
    CLIENT_AUTH_FIELDS,
    FORM_MEDIA_TYPE,
    Introspection,
    JsonWebKeySet,
    OAuthErrorBody,
    TokenResponse,
    form_body,
)
from campaignflow.api.problems import ProblemError
from campaignflow.config import Settings
from campaignflow.errors import AddressNotAllowed
from campaignflow.security.jwt_tokens import scope_text
from campaignflow.security.principal import Credential, CredentialKind, Principal
from campaignflow.security.rbac import Role, parse_scopes
from campaignflow.security.sealing import Sealer
from campaignflow.services.access import AccessService
from campaignflow.services.authentication import Authenticated
from campaignflow.services.oauth import ClientCredentials, OAuthError, OAuthService
from campaignflow.store.database import Database
from campaignflow.store.oauth import ClientRecord

router = APIRouter(tags=["oauth"])

MAX_FORM_BYTES = 16 * 1024
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="campaignflow", charset="UTF-8"'}
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": OAuthErrorBody, "description": "RFC 6749 §5.2 error."},
    401: {"model": OAuthErrorBody, "description": "`invalid_client` (RFC 6749 §5.2)."},
}


async def get_oauth_service(request: Request) -> OAuthService:
    service: OAuthService = request.app.state.oauth
    return service


OAuth = Annotated[OAuthService, Depends(get_oauth_service)]


def install_oauth(app: FastAPI) -> None:
    """Mount the OAuth endpoints (``create_app``); :func:`start_oauth` builds their service."""
    app.include_router(router)


async def start_oauth(
    app: FastAPI, database: Database, settings: Settings, sealer: Sealer
) -> OAuthService:
    """Build the service (at start-up), make sure a signing key exists, keep it in app state.
    Hand the result to the authenticator so bearer JWTs verify against it."""
    service = OAuthService.build(database, settings.oauth, sealer)
    await service.start()
    app.state.oauth = service
    return service


# --- requests -----------------------------------------------------------------------------


class _Form:
    """A parsed form body and how the client authenticated (``basic`` or in the form)."""

    def __init__(self, fields: dict[str, str], basic: tuple[str, str] | None) -> None:
        self.fields = fields
        self.basic = basic

    def credentials(self) -> ClientCredentials:
        posted_secret = self.fields.get("client_secret")
        if self.basic is not None:
            posted_id = self.fields.get("client_id")
            if posted_secret is not None or posted_id not in (None, self.basic[0]):
                raise OAuthError(
                    "invalid_request", "Authenticate with HTTP Basic or the form, not both."
                )
            return ClientCredentials(*self.basic)
        posted_id = self.fields.get("client_id")
        if posted_id is None or posted_secret is None:
            raise OAuthError("invalid_client", "Client authentication is missing.")
        return ClientCredentials(posted_id, posted_secret)

    def required(self, name: str) -> str:
        value = self.fields.get(name)
        if not value:
            raise OAuthError("invalid_request", f"The {name} parameter is missing.")
        return value


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    """RFC 6749 §2.3.1: Basic with the form-urlencoded client id and secret."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _space, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise OAuthError("invalid_client", "Use HTTP Basic (or the form) to authenticate.")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise OAuthError("invalid_client", "The Basic credentials are malformed.") from exc
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise OAuthError("invalid_client", "The Basic credentials are malformed.")
    return unquote_plus(client_id), unquote_plus(secret)


async def _read_form(request: Request) -> _Form:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != FORM_MEDIA_TYPE:
        raise OAuthError("invalid_request", f"Send the parameters as {FORM_MEDIA_TYPE}.")
    try:
        body = await read_body(request, limit=MAX_FORM_BYTES)
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    except (ProblemError, UnicodeDecodeError, ValueError) as exc:
        raise OAuthError("invalid_request", "The form body is too large or malformed.") from exc
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise OAuthError("invalid_request", f"The {name} parameter is repeated.")
        fields[name] = value
    return _Form(fields, _basic_credentials(request))


async def _admit(request: Request, service: OAuthService, form: _Form) -> ClientRecord:
    """Authenticate the client, name it for the audit log, and apply the IP allowlists of the
    client and its workspace, as for every other credential."""
    client = await service.authenticate_client(form.credentials())
    principal = Principal(
        workspace_id=client.workspace_id,
        subject=client.principal_id,
        role=Role(client.role),
        credential=Credential(
            CredentialKind.OAUTH,
            client.client_id,
            parse_scopes(client.scopes),
            client.allowed_cidrs,
        ),
    )
    request.state.principal = principal
    access: AccessService = request.app.state.access
    workspace = await access.store.workspace_cidrs(client.workspace_id)
    try:
        Authenticated.of(principal, workspace).check_address(request_address(request))
    except AddressNotAllowed as exc:
        raise OAuthError("unauthorized_client", exc.message) from exc
    return client


async def _answer(request: Request, handle: Callable[[_Form], Awaitable[Response]]) -> Response:
    """Run ``handle`` on the parsed form; OAuth errors become RFC 6749 §5.2 responses."""
    try:
        return await handle(await _read_form(request))
    except OAuthError as exc:
        body = OAuthErrorBody(error=exc.error, error_description=exc.message)
        if exc.error == "invalid_client":
            status, headers = HTTPStatus.UNAUTHORIZED, {**NO_STORE, **_CHALLENGE}
        else:
            status, headers = HTTPStatus.BAD_REQUEST, NO_STORE
        return JSONResponse(body.model_dump(), status_code=status, headers=headers)


# --- routes -------------------------------------------------------------------------------


@router.post(
    "/oauth/token",
    response_model=TokenResponse,
    responses=_ERRORS,
    openapi_extra=form_body(
        {
            "grant_type": {"type": "string", "enum": ["client_credentials"]},
            "scope": {"type": "string", "description": "Space-separated; default: all."},
            **CLIENT_AUTH_FIELDS,
        },
        ["grant_type"],
    ),
)
async def token(request: Request, service: OAuth) -> Response:
    """Client-credentials grant (RFC 6749 §4.4): a short-lived JWT access token for the
    client's service principal. Authenticate with HTTP Basic (`client_secret_basic`) or
    `client_id` + `client_secret` in the form (`client_secret_post`). Errors use the OAuth
    format (`error`, `error_description`), not problem+json."""

    async def handle(form: _Form) -> Response:
        client = await _admit(request, service, form)
        issued = await service.issue_token(
            client, form.fields.get("grant_type"), form.fields.get("scope")
        )
        body = TokenResponse(
            access_token=issued.access_token,
            expires_in=issued.expires_in,
            scope=scope_text(issued.claims.scopes),
        )
        return JSONResponse(body.model_dump(), headers=NO_STORE)

    return await _answer(request, handle)


_TOKEN_FORM = form_body(
    {
        "token": {"type": "string", "description": "The access token."},
        "token_type_hint": {"type": "string", "description": "Ignored: only access tokens."},
        **CLIENT_AUTH_FIELDS,
    },
    ["token"],
)


@router.post(
    "/oauth/introspect", response_model=Introspection, responses=_ERRORS, openapi_extra=_TOKEN_FORM
)
async def introspect(request: Request, service: OAuth) -> Response:
    """Token introspection (RFC 7662), for a client of the token's workspace: the claims of
    an active token, else only `{"active": false}` (invalid, expired, revoked, or of another
    workspace). Errors use the OAuth format, not problem+json."""

    async def handle(form: _Form) -> Response:
        client = await _admit(request, service, form)
        claims = await service.introspect(client, form.required("token"))
        body = Introspection.of(claims, service.policy)
        return JSONResponse(body.model_dump(exclude_none=True), headers=NO_STORE)

    return await _answer(request, handle)


@router.post(
    "/oauth/revoke",
    response_class=Response,
    responses={200: {"description": "Revoked, or not a token of your workspace."}, **_ERRORS},
    openapi_extra=_TOKEN_FORM,
)
async def revoke(request: Request, service: OAuth) -> Response:
    """Token revocation (RFC 7009): an access token of the caller's workspace stops working
    (in every API process within seconds). Always 200 for a well-formed request, even for an
    unknown token. Errors use the OAuth format, not problem+json."""

    async def handle(form: _Form) -> Response:
        client = await _admit(request, service, form)
        await service.revoke_token(client, form.required("token"))
        return Response(status_code=HTTPStatus.OK, headers=NO_STORE)

    return await _answer(request, handle)


@router.get("/.well-known/jwks.json", response_model=JsonWebKeySet)
async def jwks(request: Request, service: OAuth) -> Response:
    """The public keys that verify access tokens (RFC 7517). A key appears here before it
    signs; cache this for at most the `max-age` given."""
    settings: Settings = request.app.state.settings
    max_age = max(1, min(300, settings.oauth.key_publish_seconds // 2))
    headers = {"Cache-Control": f"public, max-age={max_age}"}
    return JSONResponse(await service.jwks(), headers=headers)
