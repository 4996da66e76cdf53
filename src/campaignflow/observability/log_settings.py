"""How a process logs: ``CAMPAIGNFLOW_LOG__FORMAT`` and ``CAMPAIGNFLOW_LOG__LEVEL``.

Kept apart from :mod:`campaignflow.observability.logging` so that reading settings does not
import structlog: ``campaignflow validate`` builds settings and must start fast.
"""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import BaseModel, Field, field_validator

LogFormat = Literal["json", "console", "auto"]


class LogSettings(BaseModel):
    """Format and threshold of the log lines every process role writes to stderr."""

    format: LogFormat = Field(
        "auto",
        description="`json` (one object per line), `console` (readable), or `auto`: console "
        "when stderr is a terminal, JSON otherwise.",
    )
    level: str = Field(
        "INFO", description="Lowest level written: DEBUG, INFO, WARNING, ERROR or CRITICAL."
    )

    @field_validator("level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in logging.getLevelNamesMapping():
            raise ValueError(f"unknown log level {value!r}")
        return level
