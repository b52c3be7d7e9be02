"""Redis memory as a benchmark should read it: after the keyspace has finished growing.

When a table of keys doubles, Redis moves the keys over a little at a time and keeps
both tables meanwhile, so ``used_memory`` read mid-move counts the old table twice over.
An AOF rewrite in progress holds every write made meanwhile in a buffer of its own,
which ``used_memory`` counts too (about 10 MB after a 100,000-call import).
These wait (a few seconds at most: Redis moves keys on its own when idle, and a rewrite
of this size takes seconds) until no table of database 0 is being moved and no rewrite
is running or scheduled, then read ``used_memory``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

SETTLE_S = 30.0


def _moving(htstats: Any) -> bool:
    text = htstats.decode() if isinstance(htstats, bytes) else str(htstats)
    return "rehashing target" in text


def _rewriting(persistence: Any) -> bool:
    return bool(
        int(persistence.get("aof_rewrite_in_progress", 0))
        or int(persistence.get("aof_rewrite_scheduled", 0))
    )


def used_memory(r: Any) -> int:
    """For a synchronous redis-py client."""
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline and (
        _moving(r.execute_command("DEBUG", "HTSTATS", 0)) or _rewriting(r.info("persistence"))
    ):
        time.sleep(0.05)
    return int(r.info("memory")["used_memory"])


async def used_memory_async(r: Any) -> int:
    """For an asyncio redis-py client."""
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline and (
        _moving(await r.execute_command("DEBUG", "HTSTATS", 0))
        or _rewriting(await r.info("persistence"))
    ):
        await asyncio.sleep(0.05)
    return int((await r.info("memory"))["used_memory"])
