"""Configure the process's logging into a string for one test, and undo it afterwards.

``configure_logging`` changes process-wide state (the root logger's handlers and level, every
existing logger's handlers, propagation and level, structlog's configuration, ``raiseExceptions``);
all of it is restored, so later tests see logging as pytest set it up.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog

from campaignflow.observability.log_settings import LogSettings
from campaignflow.observability.logging import configure_logging


def _loggers() -> list[logging.Logger]:
    registry = logging.root.manager.loggerDict.values()
    return [logger for logger in registry if isinstance(logger, logging.Logger)]


@contextmanager
def captured_logs(**settings: Any) -> Iterator[io.StringIO]:
    """Everything logged inside the block, as the process would write it (``LogSettings``
    fields as keyword arguments; JSON by default, since a ``StringIO`` is not a terminal)."""
    root = logging.getLogger()
    saved_root = (list(root.handlers), root.level)
    saved = {
        logger: (list(logger.handlers), logger.propagate, logger.level) for logger in _loggers()
    }
    raise_exceptions = logging.raiseExceptions
    stream = io.StringIO()
    handler = configure_logging(LogSettings(**settings), stream=stream)
    try:
        yield stream
    finally:
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()
        logging.raiseExceptions = raise_exceptions
        root.removeHandler(handler)
        root.handlers[:0] = [h for h in saved_root[0] if h not in root.handlers]
        root.setLevel(saved_root[1])
        for logger, (handlers, propagate, level) in saved.items():
            logger.handlers[:] = handlers
            logger.propagate = propagate
            logger.setLevel(level)


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """Every line written, each parsed as one JSON object (fails on a line that is not)."""
    return [json.loads(line) for line in stream.getvalue().splitlines() if line]
