"""Automatic pipelining: the Redis commands of concurrent requests travel together.

A session request needs two round trips (rate limit and session read, then leases and
the session write).  On one Redis, every request that reaches the same point in the same
event-loop turn is sent in one pipeline, so the cost of a round trip — a connection
taken from the pool, a write, a read, a wake-up — is shared by all of them, and the
replies are read straight from hiredis.  On a Cluster the commands go out one by one
(a script in a Cluster pipeline is refused).

An operation is a tuple: ``("script", name, key, *args)`` for a Lua script of
``attribution/scripts``, or a plain command such as ``("HSET", key, field, value)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import hiredis
from redis._parsers.hiredis import NOT_ENOUGH_DATA
from redis.exceptions import NoScriptError

from .lua import Scripts
from .redis_store import AnyRedis, is_cluster

Op = tuple[Any, ...]
READ_TIMEOUT_S = 10.0


class Batcher:
    def __init__(self, redis: AnyRedis, scripts: Scripts) -> None:
        self.redis = redis
        self.scripts = scripts
        self.cluster = is_cluster(redis)
        self._pending: list[tuple[Sequence[Op], asyncio.Future[list[Any]]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, *ops: Op) -> list[Any]:
        """Run ``ops`` (in order) and return their results; errors are raised."""
        if self.cluster:
            return [await self._one(op) for op in ops]
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        self._pending.append((ops, future))
        if len(self._pending) == 1:
            loop.call_soon(self._start)
        return await future

    def _start(self) -> None:
        task = asyncio.ensure_future(self._flush())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _one(self, op: Op) -> Any:
        if op[0] == "script":
            return await self.scripts(*op[1:])
        return await self.redis.execute_command(*op)

    def _command(self, op: Op) -> tuple[Any, ...]:
        if op[0] == "script":
            return ("EVALSHA", self.scripts.sha(op[1]), 1, *op[2:])
        return op

    async def _send(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Write every command at once and read the replies straight from hiredis.

        A redis-py pipeline spends more per reply (a timeout context, a parse call, a
        callback lookup) than the rest of a session request's Redis work; this reads the
        connection's own hiredis reader in a loop.  A connection without a hiredis parser
        falls back to an ordinary pipeline.
        """
        pool = self.redis.connection_pool
        conn = await pool.get_connection()
        try:
            parser = getattr(conn, "_parser", None)
            reader = getattr(parser, "_reader", None)
            stream = getattr(parser, "_stream", None)
            if not isinstance(reader, hiredis.Reader) or stream is None:
                pipe = self.redis.pipeline(transaction=False)
                for command in commands:
                    pipe.execute_command(*command)
                return list(await pipe.execute(raise_on_error=False))
            replies: list[Any] = []
            async with asyncio.timeout(READ_TIMEOUT_S):
                await conn.send_packed_command(
                    b"".join(hiredis.pack_command(c) for c in commands), check_health=False
                )
                while len(replies) < len(commands):
                    reply = reader.gets()
                    if reply is NOT_ENOUGH_DATA or reply is False:
                        data = await stream.read(65536)
                        if not data:
                            raise ConnectionError("Redis closed the connection")
                        reader.feed(data)
                        continue
                    replies.append(reply)
        except BaseException:
            await conn.disconnect()  # never hand back a connection with replies unread
            raise
        finally:
            await pool.release(conn)
        callbacks = self.redis.response_callbacks
        return [
            r if isinstance(r, Exception) or (cb := callbacks.get(c[0])) is None else cb(r)
            for c, r in zip(commands, replies, strict=True)
        ]

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        commands = [self._command(op) for ops, _ in batch for op in ops]
        try:
            results = await self._send(commands)
        except Exception as exc:  # the connection failed: every waiter hears of it
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        at = 0
        for ops, future in batch:
            part = list(results[at : at + len(ops)])
            at += len(ops)
            try:
                for i, (op, result) in enumerate(zip(ops, part, strict=True)):
                    if isinstance(result, NoScriptError):  # Redis restarted or flushed
                        part[i] = await self._one(op)
                    elif isinstance(result, Exception):
                        raise result
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
                continue
            if not future.done():
                future.set_result(part)
