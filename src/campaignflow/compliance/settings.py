"""Settings of the retention purger (``CAMPAIGNFLOW_RETENTION__*``)."""

from __future__ import annotations

from pydantic import BaseModel, Field

# Pure: the settings tree is read by every CLI command, which must not load the stores for it.
from campaignflow.domain.retention import PurgeLimits


class RetentionSettings(BaseModel):
    enabled: bool = Field(
        True, description="Run the retention purger in `worker` (and `up`): off only to debug."
    )
    interval_seconds: float = Field(
        3600.0, gt=0, description="Seconds between two passes over every workspace."
    )
    batch_size: int = Field(1000, ge=1, le=100_000, description="Rows removed per transaction.")
    max_batches: int = Field(
        100, ge=1, description="Batches per data class and pass; the rest waits for the next."
    )
    pause_seconds: float = Field(
        0.05, ge=0, description="Pause between two batches, so the engine's writes go first."
    )

    def limits(self) -> PurgeLimits:
        return PurgeLimits(self.batch_size, self.max_batches, self.pause_seconds)
