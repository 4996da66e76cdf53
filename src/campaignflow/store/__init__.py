"""Storage: the database seam, the schema, its migrations and the stores built on them."""

from campaignflow.store.database import Database, normalize_url
from campaignflow.store.workflows import VersionRecord, WorkflowRecord, WorkflowStore

__all__ = ["Database", "VersionRecord", "WorkflowRecord", "WorkflowStore", "normalize_url"]
