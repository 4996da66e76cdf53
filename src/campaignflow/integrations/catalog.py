"""The action catalog with every connector operation in it.

Built once per process from the connectors' declarations: each operation becomes the action
``provider.operation`` with its parameter model, so a workflow is checked against the operation's
schema when it is saved, and namespaces are closed (an operation no connector declares is
refused on save instead of failing at run time).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from functools import cache

from campaignflow.domain.actions import ActionCatalog, ActionSpec, builtin_catalog
from campaignflow.integrations.connector import Connector
from campaignflow.integrations.providers import builtin_connectors


def operation_specs(connectors: Mapping[str, Connector]) -> list[ActionSpec]:
    return [
        ActionSpec(
            f"{connector.provider}.{operation.name}",
            operation.summary,
            operation.params,
            connector=connector.provider,
        )
        for connector in connectors.values()
        for operation in connector.operations.values()
    ]


def catalog_for(connectors: Mapping[str, Connector]) -> ActionCatalog:
    catalog = builtin_catalog().register(*operation_specs(connectors))
    return replace(catalog, open_namespaces=False)


@cache
def connector_catalog() -> ActionCatalog:
    """The built-in actions and every built-in connector's operations."""
    return catalog_for(builtin_connectors())
