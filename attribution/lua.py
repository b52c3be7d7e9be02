"""Loads the Lua scripts of ``attribution/scripts`` once and calls them by name.

Scripts are called directly (EVALSHA, falling back to EVAL once when the server has
forgotten them), never inside a Cluster pipeline, which Redis Cluster refuses.

Redis has no ``require``: a line ``--#include lib_NAME`` is replaced by that file when
the script is loaded, so scripts share functions without copies of them.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from .redis_store import AnyRedis

NAMES = (
    "allocate",
    "match",
    "sync_pool",
    "ratelimit",
    "start",
    "store_call",
    "ingest",
    "outbox_delivered",
    "outbox_dead",
    "outbox_retry",
    "outbox_requeue",
    "enqueue_conversion",
)


INCLUDE = "--#include "


@cache
def source(name: str) -> str:
    """A script's text, with its ``--#include`` lines replaced by the files they name."""
    text = resources.files("attribution.scripts").joinpath(f"{name}.lua").read_text("utf-8")
    return "".join(
        source(line[len(INCLUDE) :].strip()) if line.startswith(INCLUDE) else line
        for line in text.splitlines(keepends=True)
    )


class Scripts:
    """The registered scripts of one Redis client."""

    def __init__(self, redis: AnyRedis) -> None:
        self._scripts = {name: redis.register_script(source(name)) for name in NAMES}

    async def __call__(self, name: str, key: str, *args: Any) -> Any:
        return await self._scripts[name](keys=[key], args=list(args))

    def queue(self, pipe: Any, name: str, key: str, *args: Any) -> None:
        """Add a script call to a (non-Cluster) pipeline; the pipeline loads it if needed."""
        script = self._scripts[name]
        pipe.scripts.add(script)
        pipe.evalsha(script.sha, 1, key, *args)

    def sha(self, name: str) -> str:
        sha: str = self._scripts[name].sha
        return sha
