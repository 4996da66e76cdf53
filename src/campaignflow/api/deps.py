"""Dependencies that hand route handlers the services built by ``create_app``.

All are ``async def``: FastAPI runs plain ``def`` dependencies in a thread pool, a thread hop per
request and dependency that costs more than the work they do.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from campaignflow.bus.step_feed import StepFeed
from campaignflow.config import Settings
from campaignflow.services.executions import ExecutionService
from campaignflow.services.ingest import IngestService
from campaignflow.services.monitoring import MonitoringService
from campaignflow.services.triggers import TriggerService
from campaignflow.services.workflows import WorkflowService


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_workflow_service(request: Request) -> WorkflowService:
    service: WorkflowService = request.app.state.workflows
    return service


async def get_execution_service(request: Request) -> ExecutionService:
    service: ExecutionService = request.app.state.executions
    return service


async def get_trigger_service(request: Request) -> TriggerService:
    service: TriggerService = request.app.state.triggers
    return service


async def get_ingest_service(request: Request) -> IngestService:
    service: IngestService = request.app.state.ingest
    return service


async def get_monitoring_service(request: Request) -> MonitoringService:
    service: MonitoringService = request.app.state.monitoring
    return service


async def get_step_feed(request: Request) -> StepFeed:
    feed: StepFeed = request.app.state.step_feed
    return feed


AppSettings = Annotated[Settings, Depends(get_settings_dep)]
Workflows = Annotated[WorkflowService, Depends(get_workflow_service)]
Executions = Annotated[ExecutionService, Depends(get_execution_service)]
Ingest = Annotated[IngestService, Depends(get_ingest_service)]
Triggers = Annotated[TriggerService, Depends(get_trigger_service)]
Monitoring = Annotated[MonitoringService, Depends(get_monitoring_service)]
StepFeedDep = Annotated[StepFeed, Depends(get_step_feed)]
