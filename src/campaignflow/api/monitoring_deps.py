"""Dependencies handing the monitoring routes what ``create_app`` built: the monitoring
service and the process's step feed (kept apart from ``deps.py``, which serves every router)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from campaignflow.bus.step_feed import StepFeed
from campaignflow.services.monitoring import MonitoringService


async def get_monitoring_service(request: Request) -> MonitoringService:
    service: MonitoringService = request.app.state.monitoring
    return service


async def get_step_feed(request: Request) -> StepFeed:
    feed: StepFeed = request.app.state.step_feed
    return feed


Monitoring = Annotated[MonitoringService, Depends(get_monitoring_service)]
StepFeedDep = Annotated[StepFeed, Depends(get_step_feed)]
