"""Logging a failure without leaking PHI.

Exception texts can carry patient data (SQLAlchemy errors quote the statement's
parameters: UIDs, descriptions; file errors quote paths named after patients), so
intake logs a failure at ERROR with the exception's class (and an OS error's
reason) only; the traceback goes to DEBUG, where PHI is allowed.
"""

from __future__ import annotations

import logging
import sys


def describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return type(exc).__name__


def log_failure(logger: logging.Logger, message: str, *args: object) -> None:
    """Call from an ``except`` block: ``message (ExceptionClass)`` at ERROR, traceback at DEBUG."""
    logger.error(message + " (%s)", *args, describe(sys.exc_info()[1]))
    logger.debug("details of the failure above", exc_info=True)
