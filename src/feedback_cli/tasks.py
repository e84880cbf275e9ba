"""Running concurrent work the way every part of fbloop needs it: all of it, or, once one part fails or the whole
is cancelled, none of the rest left running."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any


async def gather_or_cancel(awaitables: Iterable[Awaitable[Any]]) -> list[Any]:
    """Run them as tasks and wait for all. If one raises (or this is cancelled), cancel the others and wait until
    they have stopped before raising, so none is still paying or writing while the caller saves its checkpoint.
    Unlike `asyncio.TaskGroup`, the first exception is raised as it is, not in an ExceptionGroup."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
