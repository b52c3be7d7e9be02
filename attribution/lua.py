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
SEPARATOR = "\0"  # ends each value of a list (lua_list)


def lua_list(values: list[str]) -> str:
    """A list of strings as one script argument: its length, then each value, each
    followed by ``SEPARATOR``; a script reads it back with ``struct.unpack`` (in C).

    A command costs the server about a microsecond per argument to pack; one argument
    for a list costs it a join.  A value's own separator (a URL never holds one) becomes
    a space: see :func:`lua_values`."""
    text = SEPARATOR.join([str(len(values)), *values]) + SEPARATOR
    if text.count(SEPARATOR) > len(values) + 1:
        return lua_list(lua_values(values))
    return text


def lua_values(values: list[str]) -> list[str]:
    """``values`` as :func:`lua_list` passes them: each separator in them a space."""
    return [v.replace(SEPARATOR, " ") for v in values]


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
