"""Worker tuning, as a plain value (settings build it; the worker reads it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    batch_size: int = 256
    lanes: int = 4
    lease: timedelta = timedelta(seconds=60)
    max_idle: timedelta = timedelta(seconds=5)
