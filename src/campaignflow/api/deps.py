"""Dependencies that hand route handlers the services built by ``create_app``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from campaignflow.config import Settings
from campaignflow.services.workflows import WorkflowService


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_workflow_service(request: Request) -> WorkflowService:
    service: WorkflowService = request.app.state.workflows
    return service


AppSettings = Annotated[Settings, Depends(get_settings_dep)]
Workflows = Annotated[WorkflowService, Depends(get_workflow_service)]
