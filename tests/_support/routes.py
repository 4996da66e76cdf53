"""The app's routes as the router serves them (FastAPI keeps included routers lazily, so
``app.routes`` alone does not list them): path, methods, name and the effective dependant."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts

from campaignflow.api.auth import ProviderSignature


@dataclass(frozen=True, slots=True)
class ServedRoute:
    path: str
    methods: frozenset[str]
    name: str
    dependant: Dependant | None


def served_routes(app: FastAPI) -> Iterator[ServedRoute]:
    for context in iter_route_contexts(app.routes):
        dependant = getattr(context, "dependant", None)
        yield ServedRoute(
            path=context.path or "",
            methods=frozenset(context.methods or ()) - {"HEAD"},
            name=context.name or "",
            dependant=dependant if isinstance(dependant, Dependant) else None,
        )


def signature_authenticated(route: ServedRoute) -> bool:
    """Whether a provider's signature, not our credentials, authenticates the route (webhooks:
    no caller workspace, no permission; their own tests cover who gets in)."""
    pending = [route.dependant] if route.dependant else []
    while pending:
        dependant = pending.pop()
        if isinstance(dependant.call, ProviderSignature):
            return True
        pending.extend(dependant.dependencies)
    return False
