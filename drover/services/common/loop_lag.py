"""drover_event_loop_lag_seconds: how late the event loop runs a timer (blocking work shows here)."""

from __future__ import annotations

import asyncio
import contextlib

from prometheus_client import Gauge, Histogram

INTERVAL = 0.25

LAG = Histogram("drover_event_loop_lag_seconds", "How late the event loop woke a periodic timer.",
                buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
LAG_MAX = Gauge("drover_event_loop_lag_max_seconds", "The largest event-loop lag seen since start.")


async def _measure(interval: float) -> None:
    loop = asyncio.get_running_loop()
    worst = 0.0
    while True:
        start = loop.time()
        await asyncio.sleep(interval)
        lag = max(0.0, loop.time() - start - interval)
        LAG.observe(lag)
        if lag > worst:
            worst = lag
            LAG_MAX.set(lag)


def start(interval: float = INTERVAL) -> asyncio.Task[None]:
    """Measure the running loop's lag until the returned task is cancelled."""
    return asyncio.get_running_loop().create_task(_measure(interval), name="event-loop-lag")


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
