"""The workflow store's SQL, written once and named: every statement filters by workspace.

Parameters are bound by name: ``workspace`` and ``workflow`` identify the workflow; the others
are documented where the statement is defined.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, Select, and_, bindparam, case, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from campaignflow.store.tables import workflow_versions, workflows, workspaces

ARCHIVED = "archived"

_IS_WORKFLOW = and_(
    workflows.c.workspace_id == bindparam("workspace"),
    workflows.c.id == bindparam("workflow"),
)

# Rows shaped like WorkflowRecord: each workflow joined to its latest version (no N+1).
RECORDS = select(
    workflows.c.workspace_id,
    workflows.c.id,
    workflows.c.name,
    workflows.c.status,
    workflow_versions.c.version,
    workflow_versions.c.definition,
    workflow_versions.c.content_hash,
    workflows.c.created_at,
    workflows.c.updated_at,
    workflows.c.archived_at,
).select_from(
    workflows.join(
        workflow_versions,
        and_(
            workflow_versions.c.workspace_id == workflows.c.workspace_id,
            workflow_versions.c.workflow_id == workflows.c.id,
            workflow_versions.c.version == workflows.c.latest_version,
        ),
    )
)

GET_WORKFLOW = RECORDS.where(_IS_WORKFLOW)

# Rows shaped like WorkflowSummaryRecord: lists need no definitions, so they skip the join and
# the JSON decoding of every definition on the page.
SUMMARIES = select(
    workflows.c.workspace_id,
    workflows.c.id,
    workflows.c.name,
    workflows.c.status,
    workflows.c.latest_version.label("version"),
    workflows.c.created_at,
    workflows.c.updated_at,
    workflows.c.archived_at,
)

# Why a guarded update changed nothing: does the workflow exist, and in which state?
GET_STATE = select(workflows.c.status, workflows.c.latest_version).where(_IS_WORKFLOW)

INSERT_WORKFLOW = insert(workflows)

INSERT_VERSION = insert(workflow_versions)

# Columns of workspaces; an existing workspace is left as it is.
ENSURE_WORKSPACE = {
    "postgresql": postgresql.insert(workspaces).on_conflict_do_nothing(index_elements=["id"]),
    "sqlite": sqlite.insert(workspaces).on_conflict_do_nothing(index_elements=["id"]),
}

# Compare-and-set: makes version latest_version + 1 the latest if the workflow is not archived
# and its latest version is still :expected (any version when :expected is NULL). A concurrent
# writer blocks on the row and re-checks the condition after the first one commits.
# Parameters: expected, new_name, new_name_search, now.
BUMP_VERSION = (
    update(workflows)
    .where(
        _IS_WORKFLOW,
        workflows.c.status != ARCHIVED,
        workflows.c.latest_version
        == func.coalesce(bindparam("expected", type_=Integer()), workflows.c.latest_version),
    )
    .values(
        latest_version=workflows.c.latest_version + 1,
        name=bindparam("new_name"),
        name_search=bindparam("new_name_search"),
        updated_at=bindparam("now"),
    )
    .returning(
        workflows.c.latest_version,
        workflows.c.status,
        workflows.c.created_at,
        workflows.c.archived_at,
    )
)

# Status transitions, guarded by the current status. Parameters: target, allowed (a list), now.
_STATUS_GUARD = and_(_IS_WORKFLOW, workflows.c.status.in_(bindparam("allowed", expanding=True)))
# A transition to the current status is a no-op: it keeps updated_at (and archived_at).
_TOUCHED_AT = case(
    (workflows.c.status == bindparam("target"), workflows.c.updated_at), else_=bindparam("now")
)
SET_STATUS = (
    update(workflows)
    .where(_STATUS_GUARD)
    .values(status=bindparam("target"), updated_at=_TOUCHED_AT, archived_at=None)
)
ARCHIVE = (
    update(workflows)
    .where(_STATUS_GUARD)
    .values(
        status=bindparam("target"),
        updated_at=_TOUCHED_AT,
        archived_at=func.coalesce(workflows.c.archived_at, bindparam("now")),
    )
)

# Parameters: after (0 for the first page), limit.
LIST_VERSIONS = (
    select(workflow_versions)
    .where(
        workflow_versions.c.workspace_id == bindparam("workspace"),
        workflow_versions.c.workflow_id == bindparam("workflow"),
        workflow_versions.c.version > bindparam("after"),
    )
    .order_by(workflow_versions.c.version)
    .limit(bindparam("limit"))
)

GET_VERSION = select(workflow_versions).where(
    workflow_versions.c.workspace_id == bindparam("workspace"),
    workflow_versions.c.workflow_id == bindparam("workflow"),
    workflow_versions.c.version == bindparam("version"),
)


def list_workflows(status: str | None, name_contains: str | None, after: str | None) -> Select[Any]:
    """One page of SUMMARIES in id order (keyset: ids after ``after``); parameter: limit.

    Without ``status``, archived workflows are left out. ``name_contains`` matches the
    case-folded name (``name_search``) with LIKE, its wildcards escaped.
    """
    statement = SUMMARIES.where(workflows.c.workspace_id == bindparam("workspace"))
    if status is None:
        statement = statement.where(workflows.c.status != ARCHIVED)
    else:
        statement = statement.where(workflows.c.status == status)
    if name_contains:
        pattern = f"%{escape_like(name_contains.casefold())}%"
        statement = statement.where(workflows.c.name_search.like(pattern, escape="\\"))
    if after is not None:
        statement = statement.where(workflows.c.id > after)
    return statement.order_by(workflows.c.id).limit(bindparam("limit"))


def escape_like(value: str) -> str:
    """Escape LIKE wildcards so ``value`` matches literally (escape character: backslash)."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
