"""Which requests the audit log records, and how it names them. Pure: no I/O.

Recorded (SOC 2 access logging): every mutating request (POST, PUT, PATCH, DELETE) under
``/api/v1`` and ``/oauth`` whatever its outcome, and every read of personal data. Reads are
classified by route name (FastAPI's endpoint function name) in two explicit sets, and a test
fails when a ``GET`` route under ``/api/v1`` is in neither, so a new route must be classified.

Ingestion (``/api/v1/events*``, provider webhooks ``/api/v1/webhooks/*`` and Segment's
``/v1/*``) is not recorded per accepted request —
events are kept in the event log with their messageId, and hundreds of batches per second would
swamp the audit log — but its denied attempts (401, 403) are.

Naming: ``action`` is ``<resource>.<verb>``. The resource is the first path segment after the
prefix with ``-`` as ``_`` (``dead-letters`` → ``dead_letters``; ``/oauth/*`` → ``oauth``;
Segment's ``/v1/*`` → ``events``); the verb is the route name without its trailing resource
noun, singular or plural (``update_workflow`` → ``workflows.update``, ``list_dead_letters`` →
``dead_letters.list``, ``execute_workflow`` → ``workflows.execute``); a name without that
suffix is kept whole (``list_versions`` → ``workflows.list_versions``). ``resource_id`` is the
first path parameter; further ones go to ``details``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
READ_METHODS = frozenset({"GET", "HEAD"})
API_PREFIX = "/api/v1"
OAUTH_PREFIX = "/oauth"
SEGMENT_PREFIX = "/v1"
# Provider webhooks are ingestion too: hundreds of batches a second, kept in the event log.
_INGESTION_PREFIXES = (f"{API_PREFIX}/events", f"{API_PREFIX}/webhooks", SEGMENT_PREFIX)
DENIED_STATUSES = frozenset({401, 403})

# GET routes whose answer holds personal data: contacts; executions (their input and subject,
# and the contact snapshot of the detail); dead letters (the execution's input); principals
# (people's names); the audit log itself (actors, addresses).
PERSONAL_DATA_READS = frozenset(
    {
        "list_contacts",
        "get_contact",
        "list_executions",
        "get_execution",
        "list_dead_letters",
        "get_dead_letter",
        "list_principals",
        "get_principal",
        "list_audit_log",
        # Who unsubscribed, bounced or complained (by keyed digest, or the address asked).
        "list_suppressions",
        "check_suppression",
        # A run's errors name contacts, and a CRM's reason may quote a record's values.
        "get_sync_run",
        # Not a read: a provider's redirect that stores a connection's refresh token.
        "complete_authorization",
        # Privacy (issue 8): a person's consent and its proof, everything held about them, what
        # was done with their data, and who was erased (by contact id or digest).
        "get_consent",
        "list_consent_history",
        "export_contact",
        "list_processing_log",
        "list_erasures",
        "get_erasure",
    }
)
# GET routes that do not: definitions, triggers, versions, API key and grant metadata, the
# workspace allowlist, the integrity check's summary, the API's own documents.
NOT_PERSONAL_READS = frozenset(
    {
        "list_workflows",
        "get_workflow",
        "list_versions",
        "list_triggers",
        "get_trigger",
        "list_api_keys",
        "get_api_key",
        "list_grants",
        "get_workspace_access",
        "list_oauth_clients",
        "get_oauth_client",
        "verify_audit_log",
        "list_connections",
        "get_connection",
        "list_sync_runs",
        "list_integrations",
        "openapi",
        "swagger_ui_html",
        "check_webhook_url",  # a provider's check of a webhook URL: answers only ok
        # Workspace settings and the purger's counts: no person in them.
        "get_send_policy",
        "get_retention",
        "list_retention_runs",
        # Prometheus metrics (outside /api/v1, so never audited): counts by workspace and
        # workflow, route templates — no person in them.
        "metrics",
        # Live monitoring (issue 9): step events carry ids, node ids, statuses and an error
        # class, never a subject, input or output; a summary is counts per workflow and node.
        "stream_executions",
        "get_workflow_summary",
        # Alerting (issue 9): rules, channels (secrets never returned) and alerts: counts.
        "list_alert_channels",
        "get_alert_channel",
        "list_alert_rules",
        "get_alert_rule",
        "list_alerts",
        "get_alert",
    }
)


@dataclass(frozen=True, slots=True)
class AuditTarget:
    """What an audited request did, in the log's terms."""

    action: str
    resource_type: str
    resource_id: str | None
    details: dict[str, str] | None


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def may_be_audited(method: str, path: str) -> bool:
    """Whether a request can be recorded at all, known before routing (the rest pass by)."""
    if method in MUTATING_METHODS:
        prefixes = (API_PREFIX, OAUTH_PREFIX, SEGMENT_PREFIX, GRAPHQL_PATH)
        return any(_under(path, prefix) for prefix in prefixes)
    return method in READ_METHODS and _under(path, API_PREFIX)


def is_audited(method: str, path: str, route_name: str | None, status: int) -> bool:
    """Whether this request, answered with ``status``, goes to the audit log."""
    if not may_be_audited(method, path):
        return False
    if any(_under(path, prefix) for prefix in _INGESTION_PREFIXES):
        return status in DENIED_STATUSES
    if method in MUTATING_METHODS:
        return True
    return route_name in PERSONAL_DATA_READS


def outcome(status: int) -> str:
    """``success`` (2xx, 3xx), ``denied`` (401, 403) or ``failure`` (any other)."""
    if status in DENIED_STATUSES:
        return "denied"
    return "success" if 200 <= status < 400 else "failure"


def resource_of(path: str) -> str:
    if _under(path, OAUTH_PREFIX):
        return "oauth"
    if _under(path, SEGMENT_PREFIX):
        return "events"
    rest = path[len(API_PREFIX) :].strip("/") if _under(path, API_PREFIX) else path.strip("/")
    return rest.split("/", 1)[0].replace("-", "_") or "api"


def verb_of(route_name: str | None, resource: str, method: str) -> str:
    if route_name is None:
        return method.lower()
    for noun in (resource, resource.removesuffix("s")):
        if route_name.endswith("_" + noun) and len(route_name) > len(noun) + 1:
            return route_name[: -len(noun) - 1]
    return route_name


def target(
    method: str, path: str, route_name: str | None, path_params: Mapping[str, object]
) -> AuditTarget:
    """Name what the request did; ``route_name`` is ``None`` when no route matched."""
    resource = resource_of(path)
    values = [(name, str(value)) for name, value in path_params.items()]
    resource_id = values[0][1] if values else None
    details = dict(values[1:]) or None
    return AuditTarget(
        f"{resource}.{verb_of(route_name, resource, method)}", resource, resource_id, details
    )


# ---------------------------------------------------------------- GraphQL (issue 9)
# One route serves every GraphQL operation, so the route name says nothing: the GraphQL layer
# records what the operation was (GraphQLOperation on ``request.state.graphql_operation``) and
# the same rules apply to it: every mutation is recorded whatever its outcome, and a query is
# when one of its root fields reads personal data (the reads REST lists above).
GRAPHQL_PATH = "/graphql"
GRAPHQL_PERSONAL_FIELDS = frozenset(
    {"contacts", "contact", "executions", "execution", "deadLetters", "deadLetter"}
)


@dataclass(frozen=True, slots=True)
class GraphQLOperation:
    """What one ``POST /graphql`` ran: its type, name, root fields and the id its first root
    field was about; whether it was refused (UNAUTHENTICATED, FORBIDDEN) or failed otherwise."""

    operation_type: str  # "query" | "mutation" | "subscription"
    name: str | None
    fields: tuple[str, ...]
    resource_id: str | None = None
    denied: bool = False
    failed: bool = False

    @property
    def personal(self) -> bool:
        return any(name in GRAPHQL_PERSONAL_FIELDS for name in self.fields)

    @property
    def audited(self) -> bool:
        return self.operation_type == "mutation" or self.personal

    def outcome(self, status: int) -> str:
        """The HTTP status of a GraphQL answer is 200 whatever happened: its errors decide."""
        if self.denied:
            return "denied"
        return "failure" if self.failed else outcome(status)

    def target(self) -> AuditTarget:
        """``graphql.<rootField>`` (``graphql.<type>`` for several root fields)."""
        verb = self.fields[0] if len(self.fields) == 1 else self.operation_type
        details = {"operation": self.name or "", "fields": ",".join(self.fields)}
        return AuditTarget(f"graphql.{verb}", "graphql", self.resource_id, details)


def is_graphql(path: str) -> bool:
    return _under(path, GRAPHQL_PATH)
