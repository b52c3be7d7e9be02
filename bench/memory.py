"""Redis memory as a benchmark should read it: after the keyspace has finished growing.

When a table of keys doubles, Redis moves the keys over a little at a time and keeps
both tables meanwhile, so ``used_memory`` read mid-move counts the old table twice over.
These wait (a few seconds at most: Redis moves keys on its own when idle) until no
table of database 0 is being moved, then read ``used_memory``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

SETTLE_S = 30.0


def _moving(htstats: Any) -> bool:
    text = htstats.decode() if isinstance(htstats, bytes) else str(htstats)
    return "rehashing target" in text


def used_memory(r: Any) -> int:
    """For a synchronous redis-py client."""
    deadline = time.monotonic() + SETTLE_S
    while _moving(r.execute_command("DEBUG", "HTSTATS", 0)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return int(r.info("memory")["used_memory"])


async def used_memory_async(r: Any) -> int:
    """For an asyncio redis-py client."""
    deadline = time.monotonic() + SETTLE_S
    while _moving(await r.execute_command("DEBUG", "HTSTATS", 0)):
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    return int((await r.info("memory"))["used_memory"])
