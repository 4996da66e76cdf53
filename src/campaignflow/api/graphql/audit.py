"""Tells the audit middleware what a ``POST /graphql`` ran (it sees only one route): the
operation's type, name, root fields, the id it was about and whether it was refused. The
middleware then records every mutation and every read of personal data, as it does for REST
(``security/audit_policy.py``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from graphql import FieldNode, GraphQLError, StringValueNode, VariableNode
from graphql.utilities import get_operation_ast
from starlette.requests import Request
from strawberry.extensions import SchemaExtension

from campaignflow.api.graphql.errors import code_of
from campaignflow.security.audit_policy import GraphQLOperation

_ID_ARGUMENTS = ("id", "workflowId")
_DENIED = frozenset({"UNAUTHENTICATED", "FORBIDDEN"})


class AuditOperation(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        yield
        context = self.execution_context
        connection = getattr(context.context, "request", None)
        document = context.graphql_document
        if not isinstance(connection, Request) or document is None:
            return  # websockets are not audited per message; an unparsable document did nothing
        operation = get_operation_ast(document, context.operation_name)
        if operation is None:
            return
        roots = [s for s in operation.selection_set.selections if isinstance(s, FieldNode)]
        errors = getattr(context.result, "errors", None) or context.pre_execution_errors or []
        codes = {_code(error) for error in errors}
        connection.state.graphql_operation = GraphQLOperation(
            operation_type=operation.operation.value,
            name=operation.name.value if operation.name else None,
            fields=tuple(field.name.value for field in roots),
            resource_id=_resource_id(roots, context.variables or {}),
            denied=bool(codes & _DENIED),
            failed=bool(codes),
        )


def _code(error: GraphQLError) -> str:
    if error.original_error is not None:
        return code_of(error.original_error)
    return str((error.extensions or {}).get("code", "GRAPHQL_VALIDATION_FAILED"))


def _resource_id(roots: Sequence[FieldNode], variables: Mapping[str, Any]) -> str | None:
    """The ``id`` (or ``workflowId``) argument of the first root field, literal or variable."""
    if not roots:
        return None
    for argument in roots[0].arguments or ():
        if argument.name.value not in _ID_ARGUMENTS:
            continue
        value = argument.value
        if isinstance(value, StringValueNode):
            return value.value
        if isinstance(value, VariableNode):
            given = variables.get(value.name.value)
            return given if isinstance(given, str) else None
    return None
