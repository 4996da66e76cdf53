"""``/api/v1/privacy/send-policy``: the workspace's send-time policy (consent per channel,
frequency caps, quiet hours); thin translations onto :class:`SendPolicies`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from campaignflow.api.auth import CurrentPrincipal, authorize
from campaignflow.api.body import read_json, validate_body
from campaignflow.api.deps import AppSettings
from campaignflow.api.privacy_schemas import FIELDS, SendPolicyOut
from campaignflow.api.schemas import problem_responses, request_body
from campaignflow.compliance.send_gate import SendPolicies
from campaignflow.domain.send_policy import SendPolicy
from campaignflow.security.rbac import Permission
from campaignflow.store.send_policy import SendPolicyStore

router = APIRouter(prefix="/privacy", tags=["privacy"], responses=problem_responses(400, 401))


async def get_send_policies(request: Request) -> SendPolicies:
    """The process's policies (``app.state.send_policies``, shared with the executor's gate so
    a write takes effect here at once), else this app's own on its database (then the worker
    picks a change up within the gate's cache period, a few seconds)."""
    state = request.app.state
    policies: SendPolicies | None = getattr(state, "send_policies", None)
    if policies is None:
        policies = SendPolicies(SendPolicyStore(state.database))
        state.send_policies = policies
    return policies


Policies = Annotated[SendPolicies, Depends(get_send_policies)]


@router.get(
    "/send-policy",
    response_model=SendPolicyOut,
    response_model_by_alias=True,
    dependencies=[authorize(Permission.PRIVACY_READ)],
)
async def get_send_policy(principal: CurrentPrincipal, policies: Policies) -> SendPolicyOut:
    """The send-time policy every marketing message meets: `consent` (channel → the purpose
    it needs, `null`: none), `frequencyCaps`, `quietHours`. The defaults until one is set."""
    stored = await policies.stored(principal.workspace_id)
    if stored is None:
        return SendPolicyOut.of(SendPolicy(), None, None)
    policy = await policies.get(principal.workspace_id)
    return SendPolicyOut.of(policy, stored.updated_by, stored.updated_at)


@router.put(
    "/send-policy",
    response_model=SendPolicyOut,
    response_model_by_alias=True,
    openapi_extra=request_body(SendPolicy, "application/json"),
    responses=problem_responses(413, 415, 422),
    dependencies=[authorize(Permission.PRIVACY_WRITE)],
)
async def put_send_policy(
    request: Request, principal: CurrentPrincipal, policies: Policies, settings: AppSettings
) -> SendPolicyOut:
    """Replace the policy. Email and SMS keep their consent default unless `consent` lists
    them (`null` switches one off). `422` with a JSON pointer per problem."""
    document = await read_json(request, limit=settings.api.max_body_bytes)
    policy = validate_body(SendPolicy, document, FIELDS)
    await policies.put(principal.workspace_id, policy, principal.subject)
    stored = await policies.stored(principal.workspace_id)
    return SendPolicyOut.of(
        policy, stored.updated_by if stored else None, stored.updated_at if stored else None
    )
