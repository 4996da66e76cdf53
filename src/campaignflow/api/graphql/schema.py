"""The schema and the ``/graphql`` router: queries, mutations, a subscription, with error
codes, limits and audit, over HTTP (POST) and websockets (graphql-transport-ws, graphql-ws)."""

from __future__ import annotations

from collections.abc import Callable

from strawberry.exceptions import ConnectionRejectionError
from strawberry.extensions import SchemaExtension
from strawberry.fastapi import GraphQLRouter
from strawberry.types.unset import UnsetType

from campaignflow.api.graphql.audit import AuditOperation
from campaignflow.api.graphql.context import GraphQLContext, get_context
from campaignflow.api.graphql.cost import ListSizes
from campaignflow.api.graphql.errors import CodedSchema, ErrorCodes, extensions_of
from campaignflow.api.graphql.limits import (
    DEFAULT_PAGE,
    MAX_PAGE,
    PAGED_FIELDS,
    STEPS_ESTIMATE,
    limit_extensions,
)
from campaignflow.api.graphql.mutations import Mutation
from campaignflow.api.graphql.queries import Query
from campaignflow.api.graphql.subscriptions import Subscription
from campaignflow.config import Settings
from campaignflow.errors import CampaignflowError

GRAPHQL_PATH = "/graphql"


def build_schema(settings: Settings | None = None) -> CodedSchema:
    """The schema; ``settings`` bound the page sizes the cost limit assumes (the SDL does not
    depend on them)."""
    sizes = ListSizes(
        default=settings.api.page_size_default if settings else DEFAULT_PAGE,
        maximum=settings.api.page_size_max if settings else MAX_PAGE,
        paged=PAGED_FIELDS,
        fixed={"steps": STEPS_ESTIMATE},
    )
    extensions: list[Callable[[], SchemaExtension]] = [
        AuditOperation,
        ErrorCodes,
        *limit_extensions(sizes),
    ]
    return CodedSchema(
        query=Query, mutation=Mutation, subscription=Subscription, extensions=extensions
    )


class CampaignflowGraphQLRouter(GraphQLRouter[GraphQLContext, None]):
    """Authenticates a websocket at ``connection_init``: its payload's ``Authorization`` (or
    the upgrade request's header), as REST authenticates a request; a refused connection is
    closed with 4403 and the code."""

    async def on_ws_connect(self, context: GraphQLContext) -> UnsetType | dict[str, object] | None:
        try:
            await context.principal()
        except CampaignflowError as exc:
            raise ConnectionRejectionError(extensions_of(exc)) from exc
        return await super().on_ws_connect(context)


def graphql_router(settings: Settings, *, ide: bool = False) -> GraphQLRouter[GraphQLContext, None]:
    """The router to include in the app. GraphiQL only with ``ide`` (a browser IDE on a
    production API is something to ask for); GET queries are off, so every operation is a POST
    the audit middleware sees."""
    return CampaignflowGraphQLRouter(
        build_schema(settings),
        path=GRAPHQL_PATH,
        graphql_ide="graphiql" if ide else None,
        allow_queries_via_get=False,
        context_getter=get_context,
        include_in_schema=False,
    )


def render_graphql_schema() -> str:
    """The SDL as committed to ``docs/schema.graphql`` (newline-terminated)."""
    return build_schema().as_str() + "\n"
