"""Google Ads: Customer Match and click-conversion uploads, as ``google_ads.*`` actions.

Google publishes no OpenAPI file for the Google Ads API. Its contract is the protos in
googleapis/googleapis (``google/ads/googleads/v25/services/offline_user_data_job_service.proto``,
``conversion_upload_service.proto``, ``common/offline_user_data.proto``) with their
``google.api.http`` REST bindings; requests use the protos' JSON mapping (lowerCamelCase), and
the contract tests check them against JSON Schemas written from those protos.

Customer Match is three calls, each a step of its own, so a workflow can add several batches
to one offline user data job before running it:

* ``create_customer_match_job``: ``POST /{v}/customers/{id}/offlineUserDataJobs:create``, a
  ``CUSTOMER_MATCH_USER_LIST`` job for one user list, with the consent Google requires for
  EEA users. The output's ``resourceName`` is what the next two take.
* ``add_customer_match_operations``: ``POST /{v}/{resourceName}:addOperations``, ``create``
  and ``remove`` operations (one per person) whose ``userIdentifiers`` are normalised and
  hashed by Google's rules, optionally ``removeAll`` first to replace the list. At most 100,000
  identifiers per request (Google recommends 10,000) and 20 per person; partial failure is on
  by default, so one malformed person does not fail the batch.
* ``run_customer_match_job``: ``POST /{v}/{resourceName}:run``.

``upload_click_conversions``: ``POST /{v}/customers/{id}:uploadClickConversions``, at most
2,000 conversions per request (``TOO_MANY_CONVERSIONS_IN_REQUEST`` beyond), ``partialFailure``
always true as the proto says it must be. A conversion's ``orderId`` defaults to the step's
idempotency key (``<key>:<n>`` for several): Google accepts one conversion per order id and
conversion action, so a retried step cannot count a conversion twice.

Otherwise: adding a person twice to a job is harmless; a retried create leaves an extra empty
job that is never run; a retried run of a running job fails with an error that is not retried.

Auth: OAuth 2.0 refresh token (``https://oauth2.googleapis.com/token``, scope ``adwords``) and
the ``developer-token`` header; ``login-customer-id`` names the manager account through which
the customers are reached, when they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, AwareDatetime, Field, model_validator

from campaignflow.domain.circuit_breaker import BreakerPolicy
from campaignflow.integrations.audience_hashing import Kind, hash_identifier
from campaignflow.integrations.connector import (
    ConnectionSettings,
    Connector,
    ConnectorModel,
    OAuth2RefreshToken,
    OAuthAuthorization,
    Operation,
    OutboundRequest,
    ProviderResponse,
    RateLimits,
    RequestContext,
    operations,
)
from campaignflow.integrations.providers._common import Params, Secret, body_field, credential

DEFAULT_API_VERSION = "v25"
TOKEN_URL = "https://oauth2.googleapis.com/token"  # noqa: S105 (a URL, not a secret)
# TOO_MANY_USER_IDENTIFIERS: 100,000 per request and 20 per operation (a person here has 4 at
# most: e-mail, phone, address, or one mobile id or user id alone).
MAX_IDENTIFIERS_PER_REQUEST = 100_000
MAX_CONVERSIONS = 2_000  # TOO_MANY_CONVERSIONS_IN_REQUEST
MAX_CONVERSION_IDENTIFIERS = 5  # ClickConversion.user_identifiers: "maximum … is 5"

Consent = Literal["GRANTED", "DENIED"]
Text = Annotated[str, Field(min_length=1, max_length=500)]
Id = Annotated[str, Field(pattern=r"^[0-9]{1,19}$")]
ClickId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,500}$")]
JobResourceName = Annotated[
    str,
    Field(
        pattern=r"^customers/[0-9]{10}/offlineUserDataJobs/[0-9]{1,19}$",
        examples=["customers/1234567890/offlineUserDataJobs/987654321"],
    ),
]


def _without_hyphens(value: str) -> str:
    return value.replace("-", "")


CustomerId = Annotated[
    str,
    Field(pattern=r"^[0-9]{3}-?[0-9]{3}-?[0-9]{4}$", examples=["123-456-7890"]),
    AfterValidator(_without_hyphens),
]


def _google(kind: Kind) -> AfterValidator:
    return AfterValidator(lambda value: hash_identifier("google", kind, value))


Email = Annotated[Text, _google(Kind.EMAIL)]
Phone = Annotated[Text, _google(Kind.PHONE)]


class GoogleAdsCredentials(ConnectorModel):
    client_id: str = Field(
        min_length=1, max_length=500, description="The OAuth 2.0 client's id (Google Cloud)."
    )
    client_secret: Secret = Field(description="The OAuth 2.0 client's secret.")
    refresh_token: Secret | None = Field(
        None,
        description="A refresh token for the https://www.googleapis.com/auth/adwords scope, of "
        "a user with access to the accounts. Leave it out and authorize the connection on "
        "Google's consent page instead (POST /api/v1/connections/{id}/authorize).",
    )
    developer_token: Secret = Field(
        description="The Google Ads API developer token (sent as the developer-token header)."
    )


class GoogleAdsSettings(ConnectionSettings):
    api_version: str = Field(
        DEFAULT_API_VERSION,
        alias="apiVersion",
        pattern=r"^v[0-9]{2}$",
        description="Google Ads API version, e.g. v25. Google retires each about a year after "
        "its release.",
    )
    login_customer_id: str | None = Field(
        None,
        alias="loginCustomerId",
        pattern=r"^[0-9]{10}$",
        description="The manager account's customer id (10 digits, no hyphens), when the "
        "customers are reached through a manager account.",
    )


def _version(ctx: RequestContext) -> str:
    settings = ctx.settings
    return settings.api_version if isinstance(settings, GoogleAdsSettings) else DEFAULT_API_VERSION


def _headers(ctx: RequestContext) -> Mapping[str, str]:
    headers = {"developer-token": credential(ctx.credentials, "developer_token", "google_ads")}
    settings = ctx.settings
    if isinstance(settings, GoogleAdsSettings) and settings.login_customer_id:
        headers["login-customer-id"] = settings.login_customer_id
    return headers


def _post(ctx: RequestContext, path: str, body: dict[str, Any]) -> OutboundRequest:
    return OutboundRequest("POST", f"/{_version(ctx)}/{path}", headers=_headers(ctx), json=body)


def _flags(**flags: bool) -> dict[str, bool]:
    """Request flags worth sending: proto3 defaults (false) are left out."""
    return {name: True for name, value in flags.items() if value}


def _consent(ad_user_data: Consent | None, ad_personalization: Consent | None) -> dict[str, str]:
    consent = {"adUserData": ad_user_data, "adPersonalization": ad_personalization}
    return {name: value for name, value in consent.items() if value is not None}


# ------------------------------------------------------------------ create_customer_match_job


class CreateCustomerMatchJobParams(Params):
    """Creates an offline user data job that updates one Customer Match user list."""

    customer_id: CustomerId = Field(description="The Google Ads customer (account) id.")
    user_list_id: Id = Field(description="The Customer Match user list's id.")
    ad_user_data_consent: Consent | None = Field(
        None, description="Consent to send these people's data to Google (EEA users)."
    )
    ad_personalization_consent: Consent | None = Field(
        None, description="Consent to personalised advertising for these people (EEA users)."
    )
    enable_match_rate_range_preview: bool = Field(
        False, description="Ask Google to estimate the match rate range while the job runs."
    )
    validate_only: bool = Field(False, description="Validate the request, create nothing.")


def create_customer_match_job_request(
    params: CreateCustomerMatchJobParams, ctx: RequestContext
) -> OutboundRequest:
    metadata: dict[str, Any] = {
        "userList": f"customers/{params.customer_id}/userLists/{params.user_list_id}"
    }
    consent = _consent(params.ad_user_data_consent, params.ad_personalization_consent)
    if consent:
        metadata["consent"] = consent
    body: dict[str, Any] = {
        "job": {"type": "CUSTOMER_MATCH_USER_LIST", "customerMatchUserListMetadata": metadata},
        **_flags(
            validateOnly=params.validate_only,
            enableMatchRateRangePreview=params.enable_match_rate_range_preview,
        ),
    }
    return _post(ctx, f"customers/{params.customer_id}/offlineUserDataJobs:create", body)


def create_job_output(response: ProviderResponse) -> dict[str, Any]:
    return {"status": response.status, "resourceName": body_field(response, "resourceName")}


# -------------------------------------------------------------- add_customer_match_operations


KeyType = Literal["CONTACT_INFO", "MOBILE_ADVERTISING_ID", "CRM_ID"]


class CustomerMatchMember(Params):
    """One person, by the identifiers of the list's upload key type: contact information
    (e-mail, phone, or first and last name with country and postal code), a mobile advertising
    id, or your own user id. Contact information is normalised and hashed by Google's rules
    (a SHA-256 digest is sent as it is)."""

    email: Email | None = Field(None, description="E-mail address.")
    phone: Phone | None = Field(
        None, description="Phone number with its country code, e.g. +1 650 555 1212."
    )
    first_name: Annotated[Text, _google(Kind.FIRST_NAME)] | None = Field(
        None, description="First name (with lastName, countryCode and postalCode)."
    )
    last_name: Annotated[Text, _google(Kind.LAST_NAME)] | None = Field(
        None, description="Last name (with firstName, countryCode and postalCode)."
    )
    country_code: Annotated[Text, _google(Kind.COUNTRY)] | None = Field(
        None, description="ISO 3166-1 alpha-2 country of the address, e.g. US."
    )
    postal_code: Annotated[Text, _google(Kind.ZIP)] | None = Field(
        None, description="Postal code of the address."
    )
    mobile_id: Annotated[Text, _google(Kind.MOBILE_ADVERTISER_ID)] | None = Field(
        None, description="IDFA or Android advertising id (lists keyed by mobile id)."
    )
    third_party_user_id: Annotated[Text, _google(Kind.EXTERNAL_ID)] | None = Field(
        None, description="Your own user id (lists keyed by CRM id)."
    )

    @model_validator(mode="after")
    def _one_kind_of_key(self) -> Self:
        address = [self.first_name, self.last_name, self.country_code, self.postal_code]
        if any(part is not None for part in address) and None in address:
            raise ValueError("an address needs firstName, lastName, countryCode and postalCode")
        if not self.identifiers:
            raise ValueError("give an e-mail, phone, address, mobileId or thirdPartyUserId")
        if len(self.identifiers) > 1 and self.key_type != "CONTACT_INFO":
            raise ValueError("a mobileId or thirdPartyUserId cannot be combined with others")
        return self

    @property
    def key_type(self) -> KeyType:
        if self.mobile_id is not None:
            return "MOBILE_ADVERTISING_ID"
        if self.third_party_user_id is not None:
            return "CRM_ID"
        return "CONTACT_INFO"

    @property
    def identifiers(self) -> list[dict[str, Any]]:
        """The proto's UserIdentifier list, one of each kind given."""
        found: list[dict[str, Any]] = []
        single = {
            "hashedEmail": self.email,
            "hashedPhoneNumber": self.phone,
            "mobileId": self.mobile_id,
            "thirdPartyUserId": self.third_party_user_id,
        }
        found += [{name: value} for name, value in single.items() if value is not None]
        if self.first_name is not None:
            address = {
                "hashedFirstName": self.first_name,
                "hashedLastName": self.last_name,
                "countryCode": self.country_code,
                "postalCode": self.postal_code,
            }
            found.append({"addressInfo": address})
        return found


Members = Annotated[list[CustomerMatchMember], Field(max_length=MAX_IDENTIFIERS_PER_REQUEST)]


class AddCustomerMatchOperationsParams(Params):
    """Adds people to, or removes them from, a Customer Match job's user list."""

    job_resource_name: JobResourceName = Field(
        description="The job, as create_customer_match_job's resourceName returns it."
    )
    add: Members = Field(default_factory=list, description="People to add to the list.")
    remove: Members = Field(default_factory=list, description="People to remove from the list.")
    remove_all: bool = Field(
        False, description="Empty the list first (with add: replace its members)."
    )
    enable_partial_failure: bool = Field(
        True, description="Apply the valid operations even when some are invalid."
    )
    enable_warnings: bool = Field(
        False, description="Report malformed values as warnings instead of failing them."
    )
    validate_only: bool = Field(False, description="Validate the request, change nothing.")

    @model_validator(mode="after")
    def _within_limits(self) -> Self:
        if not (self.add or self.remove or self.remove_all):
            raise ValueError("give people to add or remove, or removeAll")
        if self.remove_all and self.remove:
            raise ValueError("removeAll already removes everyone: leave remove empty")
        members = [*self.add, *self.remove]
        total = sum(len(member.identifiers) for member in members)
        if total > MAX_IDENTIFIERS_PER_REQUEST:
            raise ValueError(
                f"{total:,} identifiers: Google accepts {MAX_IDENTIFIERS_PER_REQUEST:,} per request"
            )
        if len({member.key_type for member in members}) > 1:
            raise ValueError(
                "one list takes one kind of key: do not mix contact information, "
                "mobileId and thirdPartyUserId"
            )
        return self


def add_customer_match_operations_request(
    params: AddCustomerMatchOperationsParams, ctx: RequestContext
) -> OutboundRequest:
    operations_: list[dict[str, Any]] = [{"removeAll": True}] if params.remove_all else []
    operations_ += [{"remove": {"userIdentifiers": m.identifiers}} for m in params.remove]
    operations_ += [{"create": {"userIdentifiers": m.identifiers}} for m in params.add]
    body: dict[str, Any] = {
        "enablePartialFailure": params.enable_partial_failure,
        "operations": operations_,
        **_flags(enableWarnings=params.enable_warnings, validateOnly=params.validate_only),
    }
    return _post(ctx, f"{params.job_resource_name}:addOperations", body)


def add_operations_output(response: ProviderResponse) -> dict[str, Any]:
    return {
        "status": response.status,
        "partialFailureError": body_field(response, "partialFailureError"),
        "warning": body_field(response, "warning"),
    }


# --------------------------------------------------------------------- run_customer_match_job


class RunCustomerMatchJobParams(Params):
    """Runs a Customer Match job: Google processes its operations, asynchronously."""

    job_resource_name: JobResourceName = Field(description="The job to run.")
    validate_only: bool = Field(False, description="Validate the request, run nothing.")


def run_customer_match_job_request(
    params: RunCustomerMatchJobParams, ctx: RequestContext
) -> OutboundRequest:
    body: dict[str, Any] = {**_flags(validateOnly=params.validate_only)}
    return _post(ctx, f"{params.job_resource_name}:run", body)


def run_job_output(response: ProviderResponse) -> dict[str, Any]:
    """The long-running operation's name, to look the job's outcome up later."""
    return {"status": response.status, "operation": body_field(response, "name")}


# ------------------------------------------------------------------- upload_click_conversions


def google_date_time(moment: datetime) -> str:
    """Google's ``yyyy-mm-dd hh:mm:ss+|-hh:mm``, in the moment's own offset."""
    offset = moment.strftime("%z")
    return f"{moment:%Y-%m-%d %H:%M:%S}{offset[:3]}:{offset[3:]}"


class ClickConversion(Params):
    """One conversion of an ad click (gclid, or gbraid/wbraid for iOS), or of a user known by
    e-mail or phone (enhanced conversions for leads)."""

    conversion_action_id: Id = Field(description="The conversion action's id.")
    conversion_date_time: AwareDatetime = Field(
        description="When the conversion happened, with its UTC offset, after the click."
    )
    gclid: ClickId | None = Field(None, description="The Google click id of the ad click.")
    gbraid: ClickId | None = Field(None, description="Click id of app conversions (iOS).")
    wbraid: ClickId | None = Field(None, description="Click id of web conversions (iOS).")
    email: Email | None = Field(None, description="The converting user's e-mail address.")
    phone: Phone | None = Field(None, description="The converting user's phone number.")
    conversion_value: float | None = Field(None, ge=0, description="The conversion's value.")
    currency_code: str | None = Field(
        None, pattern=r"^[A-Z]{3}$", description="ISO 4217 currency of the value, e.g. USD."
    )
    order_id: Text | None = Field(
        None, description="Your order or transaction id (default: the step's idempotency key)."
    )
    ad_user_data_consent: Consent | None = Field(
        None, description="Consent to send the user's data to Google (EEA users)."
    )

    @model_validator(mode="after")
    def _attributable(self) -> Self:
        clicks = [click for click in (self.gclid, self.gbraid, self.wbraid) if click is not None]
        if len(clicks) > 1:
            raise ValueError("give at most one of gclid, gbraid and wbraid")
        if not clicks and self.email is None and self.phone is None:
            raise ValueError("give a click id (gclid, gbraid, wbraid) or the user's email/phone")
        return self


def _conversion(conversion: ClickConversion, customer_id: str, order_id: str) -> dict[str, Any]:
    action = f"customers/{customer_id}/conversionActions/{conversion.conversion_action_id}"
    body: dict[str, Any] = {
        "conversionAction": action,
        "conversionDateTime": google_date_time(conversion.conversion_date_time),
        "orderId": conversion.order_id or order_id,
    }
    optional: dict[str, Any] = {
        "gclid": conversion.gclid,
        "gbraid": conversion.gbraid,
        "wbraid": conversion.wbraid,
        "conversionValue": conversion.conversion_value,
        "currencyCode": conversion.currency_code,
    }
    body.update({name: value for name, value in optional.items() if value is not None})
    identifiers = [
        {name: value}
        for name, value in (
            ("hashedEmail", conversion.email),
            ("hashedPhoneNumber", conversion.phone),
        )
        if value is not None
    ]
    if identifiers:
        body["userIdentifiers"] = identifiers
    if conversion.ad_user_data_consent is not None:
        body["consent"] = {"adUserData": conversion.ad_user_data_consent}
    return body


class UploadClickConversionsParams(Params):
    """Uploads offline click conversions (and enhanced conversions for leads)."""

    customer_id: CustomerId = Field(description="The Google Ads customer (account) id.")
    conversions: Annotated[
        list[ClickConversion], Field(min_length=1, max_length=MAX_CONVERSIONS)
    ] = Field(description=f"The conversions, at most {MAX_CONVERSIONS:,} per call.")
    job_id: int | None = Field(
        None, ge=0, lt=2**31, description="Your id of this upload, reported back by Google."
    )
    validate_only: bool = Field(False, description="Validate the request, upload nothing.")


def upload_click_conversions_request(
    params: UploadClickConversionsParams, ctx: RequestContext
) -> OutboundRequest:
    many = len(params.conversions) > 1
    conversions = [
        _conversion(
            conversion,
            params.customer_id,
            f"{ctx.idempotency_key}:{index}" if many else ctx.idempotency_key,
        )
        for index, conversion in enumerate(params.conversions)
    ]
    body: dict[str, Any] = {
        "conversions": conversions,
        "partialFailure": True,
        **_flags(validateOnly=params.validate_only),
    }
    if params.job_id is not None:
        body["jobId"] = params.job_id
    return _post(ctx, f"customers/{params.customer_id}:uploadClickConversions", body)


def upload_output(response: ProviderResponse) -> dict[str, Any]:
    return {
        "status": response.status,
        "results": body_field(response, "results"),
        "partialFailureError": body_field(response, "partialFailureError"),
        "jobId": body_field(response, "jobId"),
    }


def ping_request(ctx: RequestContext) -> OutboundRequest:
    """The customers the credentials reach: checks the token and the developer token."""
    return OutboundRequest(
        "GET", f"/{_version(ctx)}/customers:listAccessibleCustomers", headers=_headers(ctx)
    )


GOOGLE_ADS = Connector(
    provider="google_ads",
    title="Google Ads",
    category="ads",
    description="Google Ads: update Customer Match lists through offline user data jobs, and "
    "upload offline click conversions. Personal data is normalised and SHA-256-hashed by "
    "Google's rules before it leaves.",
    base_url="https://googleads.googleapis.com",
    auth=OAuth2RefreshToken(token_url=TOKEN_URL),
    # Offline access with a fresh consent: Google issues a refresh token only then.
    authorization=OAuthAuthorization(
        authorize_url="https://accounts.google.com/o/oauth2/v2/auth",
        scopes=("https://www.googleapis.com/auth/adwords",),
        extra_params=MappingProxyType({"access_type": "offline", "prompt": "consent"}),
    ),
    credentials=GoogleAdsCredentials,
    settings=GoogleAdsSettings,
    operations=operations(
        Operation(
            name="create_customer_match_job",
            summary="Create an offline user data job for a Customer Match list.",
            params=CreateCustomerMatchJobParams,
            request=create_customer_match_job_request,
            output=create_job_output,
        ),
        Operation(
            name="add_customer_match_operations",
            summary="Add or remove Customer Match list members in a job.",
            params=AddCustomerMatchOperationsParams,
            request=add_customer_match_operations_request,
            output=add_operations_output,
        ),
        Operation(
            name="run_customer_match_job",
            summary="Run a Customer Match job.",
            params=RunCustomerMatchJobParams,
            request=run_customer_match_job_request,
            output=run_job_output,
        ),
        Operation(
            name="upload_click_conversions",
            summary="Upload offline click conversions.",
            params=UploadClickConversionsParams,
            request=upload_click_conversions_request,
            output=upload_output,
        ),
    ),
    # Google limits operations per developer token and day (Explorer 2,880, Basic 15,000,
    # Standard unlimited: "API limits and quotas") and answers RESOURCE_EXHAUSTED / 429 to
    # short-term bursts, with no published rate. One request a second, bursts of 10, is far
    # below anything Google throttles, and each request can carry 100,000 identifiers.
    rate_limits=RateLimits(requests_per_minute=60, burst_limit=10),
    breaker=BreakerPolicy(),
    test=ping_request,
    docs_url="https://developers.google.com/google-ads/api/docs/remarketing/audience-segments/customer-match/get-started",
)
