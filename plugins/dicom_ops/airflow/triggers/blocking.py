"""The one way our triggers call blocking code: app DB queries, DRAW HTTP calls, and
Airflow connection lookups.

Every trigger of the triggerer shares one event loop, so a blocking call made in
``run()`` stalls all of them. ``run_blocking`` runs it in the loop's thread pool instead
(``asyncio.to_thread``, which also carries the caller's context variables).

Why not asgiref's ``sync_to_async``: by default it is thread-sensitive and runs every
such call in one shared thread, so a slow DRAW server would hold up the app DB polls of
``SeriesReadyTrigger`` (and any other trigger using it). Airflow's Task SDK calls work
from a pool thread: the triggerer's comms hand them to its event loop thread-safely.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


async def run_blocking(call: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """``await run_blocking(f, x)`` is ``f(x)`` without blocking the triggerer's loop."""
    return await asyncio.to_thread(call, *args, **kwargs)
