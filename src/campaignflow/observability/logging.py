"""Structured logs: every line a process writes — ours, uvicorn's, alembic's, asyncio's — as one
JSON object (or a readable console line), masked just before it is rendered.

All logging goes through the standard library: our modules use ``logging.getLogger(__name__)``
(with ``extra=`` for fields), third-party libraries do the same, and structlog loggers are
routed there too. One handler on the root logger formats every record with structlog's
``ProcessorFormatter``; its last step before rendering is :func:`mask_event`, so no path
reaches the output unmasked — exception tracebacks are formatted to text first, then masked.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from campaignflow.observability.log_settings import LogSettings
from campaignflow.security.masking import mask_mapping

# The first members of every JSON line, in this order; the event's own fields follow.
HEAD_KEYS = ("timestamp", "level", "logger", "event")
# Set by our own processors (they overwrite whatever a caller passed), so nothing to mask.
_TRUSTED_KEYS = ("timestamp", "level", "logger")
# Uvicorn repeats some messages with terminal colour codes in this extra field.
_DROPPED_KEYS = ("color_message",)
# Chatty at INFO about nothing an operator acts on (alembic lists its plugins at every start):
# shown only when the level is DEBUG.
_CHATTY_LOGGERS = ("alembic.runtime.plugins",)


def mask_event(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask personal data and secrets in every field of the event."""
    trusted = {key: event_dict.pop(key) for key in _TRUSTED_KEYS if key in event_dict}
    for key in _DROPPED_KEYS:
        event_dict.pop(key, None)
    return {**trusted, **mask_mapping(event_dict)}


def render_json(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> str:
    """One JSON object per line: timestamp, level, logger and event first, then the fields."""
    ordered = {key: event_dict.pop(key) for key in HEAD_KEYS if key in event_dict}
    ordered.update(event_dict)
    try:
        return orjson.dumps(ordered, default=str).decode()
    except (TypeError, orjson.JSONEncodeError):
        # e.g. a lone surrogate from a file name: the slower encoder escapes it.
        return json.dumps(ordered, default=str, ensure_ascii=True)


def _renderer(settings: LogSettings, stream: TextIO) -> Processor:
    is_terminal = bool(getattr(stream, "isatty", lambda: False)())
    if settings.format == "console" or (settings.format == "auto" and is_terminal):
        return structlog.dev.ConsoleRenderer(colors=is_terminal)
    return render_json


def _shared_processors() -> list[Processor]:
    """What both structlog loggers and standard-library records get before formatting."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


def build_formatter(settings: LogSettings, stream: TextIO) -> structlog.stdlib.ProcessorFormatter:
    """The one formatter: records of the standard library get the shared processors and their
    ``extra=`` fields; then, for every record, tracebacks become text, the event is masked, and
    it is rendered."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_shared_processors(), structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            mask_event,
            _renderer(settings, stream),
        ],
    )


def configure_logging(settings: LogSettings, *, stream: TextIO | None = None) -> logging.Handler:
    """Route all logging of this process through one masked, structured handler on ``stream``
    (stderr by default: stdout carries command output such as ``validate --json``).

    Called once per process by the CLI roles. Handlers that anything installed before are
    removed, so no line can bypass the masking; returns the handler installed.
    """
    stream = stream if stream is not None else sys.stderr
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(build_formatter(settings, stream))
    _route_everything_to(handler, settings.level)
    # A failing record (bad %-arguments, a closed stream) would otherwise be printed to stderr
    # with its raw, unmasked arguments.
    logging.raiseExceptions = False
    return handler


def _route_everything_to(handler: logging.Handler, level: str) -> None:
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if level == "DEBUG" else logging.WARNING)
    for logger in _existing_loggers():
        for existing in list(logger.handlers):
            if not isinstance(existing, logging.NullHandler):
                logger.removeHandler(existing)
        logger.propagate = True


def _existing_loggers() -> list[logging.Logger]:
    registry: MutableMapping[str, Any] = logging.root.manager.loggerDict
    return [logger for logger in list(registry.values()) if isinstance(logger, logging.Logger)]
