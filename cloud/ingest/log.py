"""The cloud processes' structlog configuration: JSON lines unless stderr is a terminal."""

from __future__ import annotations

import logging
import sys
from typing import TextIO, cast

import structlog


def configure_logging(*, level: str = "INFO", json: bool | None = None) -> None:
    """Configure structlog once per process; `json=None` picks JSON unless stderr is a TTY."""
    as_json = not sys.stderr.isatty() if json is None else json
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=cast("TextIO", _Stderr())),
        cache_logger_on_first_use=True,
    )


class _Stderr:
    """Whatever `sys.stderr` is when a line is written, not when logging was configured.

    A CLI run in-process (tests, `typer.testing.CliRunner`) swaps stderr for a stream it closes
    afterwards; a logger holding that stream would fail on every later line.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()
