"""Automatic pipelining: the Redis commands of concurrent requests travel together.

On one Redis, each Batcher keeps one connection of its own and multiplexes it: every
operation that reaches it in the same event-loop turn is packed into one write, and a
reader task hands the replies back in order as they arrive, while the next batch may
already be on its way.  There is no connection to take from a pool, no lock and no
health check per batch: those cost more than a session request's Redis work.  On a
Cluster the commands go out one by one (a script in a Cluster pipeline is refused).

An operation is a tuple: ``("script", name, key, *args)`` for a Lua script of
``attribution/scripts``, or a plain command such as ``("HSET", key, field, value)``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Any

import hiredis
from redis._parsers.base import BaseParser
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, NoScriptError, RedisError

from .lua import Scripts
from .redis_store import AnyRedis, is_cluster

Op = tuple[Any, ...]
READ_TIMEOUT_S = 10.0


def _reply_reader() -> hiredis.Reader:
    """A fresh reader (one per connection), raising redis-py's errors (NoScriptError…)."""
    return hiredis.Reader(protocolError=InvalidResponse, replyError=BaseParser.parse_error)


class _Request:
    """One caller's operations, their replies so far, and the future it awaits."""

    __slots__ = ("future", "ops", "replies")

    def __init__(self, ops: Sequence[Op], future: asyncio.Future[list[Any]]) -> None:
        self.ops = ops
        self.future = future
        self.replies: list[Any] = []


class Batcher:
    def __init__(self, redis: AnyRedis, scripts: Scripts) -> None:
        self.redis = redis
        self.scripts = scripts
        self.cluster = is_cluster(redis)
        self._pending: list[_Request] = []  # not yet written
        self._sent: deque[_Request] = deque()  # written, replies awaited in this order
        self._conn: AbstractConnection | None = None
        self._reader = _reply_reader()
        self._tasks: set[asyncio.Task[None]] = set()
        self._reading = False
        self._connecting = False

    async def __call__(self, *ops: Op) -> list[Any]:
        """Run ``ops`` (in order) and return their results; errors are raised."""
        if self.cluster:
            return [await self._one(op) for op in ops]
        loop = asyncio.get_running_loop()
        request = _Request(ops, loop.create_future())
        self._pending.append(request)
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        return await request.future

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
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

    # ------------------------------------------------------------ writing

    def _flush(self) -> None:
        conn = self._conn
        if conn is None or conn._writer is None or conn._writer.is_closing():
            if not self._connecting:
                self._connecting = True
                self._spawn(self._connect())
            return
        batch, self._pending = self._pending, []
        data = b"".join(
            hiredis.pack_command(self._command(op)) for request in batch for op in request.ops
        )
        conn._writer.write(data)
        self._sent.extend(batch)
        if not self._reading:
            self._reading = True
            self._spawn(self._read(conn))

    async def _connect(self) -> None:
        """A connection of our own, made by the client's pool (auth, db, TLS as configured)."""
        try:
            conn = await self.redis.connection_pool.get_connection()
        except Exception as exc:
            self._conn = None
            self._fail(self._pending, exc)
            self._pending = []
            return
        finally:
            self._connecting = False
        self._conn = conn
        self._reader = _reply_reader()
        if self._pending:
            self._flush()

    # ------------------------------------------------------------ reading

    async def _read(self, conn: AbstractConnection) -> None:
        """Read replies while any are owed; a dead or silent connection fails them all."""
        reader, stream = self._reader, conn._reader
        assert stream is not None
        loop = asyncio.get_running_loop()
        try:
            # one deadline for the whole run, pushed on only when half of it is gone: a
            # timer per read cost more than the read; a silent Redis fails in 5 to 10 s
            async with asyncio.timeout(READ_TIMEOUT_S) as deadline:
                while self._sent:
                    now, when = loop.time(), deadline.when()
                    if when is not None and when - now < READ_TIMEOUT_S / 2:
                        deadline.reschedule(now + READ_TIMEOUT_S)
                    data = await stream.read(65536)
                    if not data:
                        raise RedisConnectionError("Redis closed the connection")
                    reader.feed(data)
                    while (reply := reader.gets()) is not False:
                        request = self._sent[0]
                        request.replies.append(reply)
                        if len(request.replies) == len(request.ops):
                            self._sent.popleft()
                            try:
                                self._settle(request)
                            except Exception as exc:  # a reply of an unexpected shape
                                self._fail([request], exc)
        except Exception as exc:
            if not isinstance(exc, RedisError):  # a timeout, a reset: as redis-py says it
                exc = RedisConnectionError(f"Redis connection lost: {exc!r}")
            sent, self._sent = list(self._sent), deque()
            self._conn = None
            self._reading = False  # before any await: the next connection needs a reader
            self._fail(sent, exc)
            await conn.disconnect()  # never reuse a connection with replies unread
            await self.redis.connection_pool.release(conn)
        finally:
            if self._conn is conn:
                self._reading = False

    def _settle(self, request: _Request) -> None:
        replies = request.replies
        if any(isinstance(reply, NoScriptError) for reply in replies):  # Redis restarted
            self._spawn(self._redo(request))
            return
        error = next((reply for reply in replies if isinstance(reply, Exception)), None)
        if error is not None:
            self._fail([request], error)
            return
        for i, op in enumerate(request.ops):
            if op[0] == "HGETALL" and isinstance(replies[i], list):  # RESP2 gives pairs
                replies[i] = dict(zip(replies[i][::2], replies[i][1::2], strict=True))
        if not request.future.done():
            request.future.set_result(replies)

    async def _redo(self, request: _Request) -> None:
        """Run again, one by one, the scripts Redis no longer had (it restarted or was
        flushed); loading them again is :class:`Scripts`' work."""
        try:
            for i, reply in enumerate(request.replies):
                if isinstance(reply, NoScriptError):
                    request.replies[i] = await self._one(request.ops[i])
        except Exception as exc:
            self._fail([request], exc)
            return
        self._settle(request)

    @staticmethod
    def _fail(requests: Sequence[_Request], exc: BaseException) -> None:
        for request in requests:
            if not request.future.done():
                request.future.set_exception(exc)
