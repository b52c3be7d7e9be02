"""Automatic pipelining: the Redis commands of concurrent requests travel together.

On one Redis, each Batcher keeps one connection of its own and multiplexes it: the
operations that reach it in one event-loop turn are packed into one write (a few at a
time, so Redis starts on the first while the server still reads the others), and the
replies are handed back in order, from the connection's own ``data_received``, as they
arrive.  There is no connection to take from a pool, no lock, no reader task and no
health check per batch: those cost more than a session request's Redis work.  On a
Cluster the commands go out one by one (a script in a Cluster pipeline is refused).

An operation is a tuple: ``("script", name, key, *args)`` for a Lua script of
``attribution/scripts``, or a plain command such as ``("HSET", key, field, value)``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Sequence
from typing import Any

import hiredis
from redis._parsers.base import BaseParser
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, NoScriptError, RedisError

from .lua import Scripts
from .redis_store import AnyRedis, is_cluster

Op = tuple[Any, ...]
READ_TIMEOUT_S = 10.0  # a Redis silent this long while replies are owed fails them
_PUSH = getattr(hiredis, "PushNotification", ())  # RESP3 pushes; hiredis 3.0 and later
WRITE_EVERY = 4  # operations: a turn's batch goes out in writes of about this many


def _reply_reader() -> hiredis.Reader:
    """A fresh reader (one per connection), raising redis-py's errors (NoScriptError…)."""
    return hiredis.Reader(protocolError=InvalidResponse, replyError=BaseParser.parse_error)


class _Request:
    """One caller's operations, packed, their replies so far, and the future it awaits."""

    __slots__ = ("data", "future", "ops", "replies")

    def __init__(self, ops: Sequence[Op], data: bytes, future: asyncio.Future[list[Any]]) -> None:
        self.ops = ops
        self.data = data
        self.future = future
        self.replies: list[Any] = []


class Batcher:
    def __init__(self, redis: AnyRedis, scripts: Scripts) -> None:
        self.redis = redis
        self.scripts = scripts
        self.cluster = is_cluster(redis)
        self._pending: list[_Request] = []  # not yet written
        self._link: _Link | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._connecting = False

    def __call__(self, *ops: Op) -> Awaitable[list[Any]]:
        """Run ``ops`` (in order): awaiting the call gives their results, or raises.

        A plain function handing back its future: a coroutine in between would cost
        every page view one more frame to make, suspend and resume."""
        if self.cluster:
            return self._in_turn(ops)
        link = self._link
        # a live connection's loop is the running one; asking asyncio costs a system
        # call (getpid) on Python 3.11
        loop = link.loop if link is not None and not link.closed else asyncio.get_running_loop()
        future = loop.create_future()
        try:  # packed here, so a value Redis cannot take fails only the caller who gave it
            if len(ops) == 1:  # most calls: no list to make and join
                data = hiredis.pack_command(self._command(ops[0]))
            else:
                data = b"".join([hiredis.pack_command(self._command(op)) for op in ops])
        except Exception as exc:
            future.set_exception(exc)
            return future
        request = _Request(ops, data, future)
        pending = self._pending
        pending.append(request)
        if len(pending) == 1:
            loop.call_soon(self._flush)
        elif len(pending) >= WRITE_EVERY:
            self._flush()
        return request.future

    async def _in_turn(self, ops: Sequence[Op]) -> list[Any]:
        return [await self._one(op) for op in ops]

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

    def _flush(self) -> None:
        if not self._pending:
            return
        link = self._link
        if link is None or link.closed:
            if not self._connecting:
                self._connecting = True
                self._spawn(self._connect())
            return
        batch, self._pending = self._pending, []
        link.send(batch, b"".join([request.data for request in batch]))

    async def _connect(self) -> None:
        """A connection of our own, made by the client's pool (auth, db, TLS as configured)."""
        try:
            conn = await self.redis.connection_pool.get_connection()
            self._link = _Link(self, conn)
        except BaseException as exc:  # cancelled too: nobody may be left waiting
            self._link = None
            _fail(self._pending, exc)
            self._pending = []
            if not isinstance(exc, Exception):
                raise
            return
        finally:
            self._connecting = False
        self._flush()

    def _settle(self, request: _Request) -> None:
        replies = request.replies
        for i, reply in enumerate(replies):
            if isinstance(reply, Exception):
                self._settle_error(request, reply)
                return
            if isinstance(reply, list) and request.ops[i][0] == "HGETALL":  # RESP2: pairs
                replies[i] = dict(zip(reply[::2], reply[1::2], strict=True))
        if not request.future.done():
            request.future.set_result(replies)

    def _settle_error(self, request: _Request, error: Exception) -> None:
        if any(isinstance(reply, NoScriptError) for reply in request.replies):  # restarted
            self._spawn(self._redo(request))
        else:
            _fail([request], error)

    async def _redo(self, request: _Request) -> None:
        """Run again, one by one, the scripts Redis no longer had (it restarted or was
        flushed); loading them again is :class:`Scripts`' work."""
        try:
            for i, reply in enumerate(request.replies):
                if isinstance(reply, NoScriptError):
                    request.replies[i] = await self._one(request.ops[i])
        except Exception as exc:
            _fail([request], exc)
            return
        self._settle(request)


class _Link(asyncio.Protocol):
    """A Batcher's connection, taken over from redis-py once it is set up: writes go
    straight to its transport, and replies are parsed where they arrive.

    A dead connection, or one that owes replies and has said nothing for
    ``READ_TIMEOUT_S``, fails every caller still waiting on it, and is closed: it is
    never used again, since its unread replies would go to the wrong callers."""

    def __init__(self, batcher: Batcher, conn: AbstractConnection) -> None:
        assert conn._writer is not None
        self.batcher = batcher
        self.conn = conn
        self.transport = conn._writer.transport
        self.sent: deque[_Request] = deque()  # written, replies awaited in this order
        self.reader = _reply_reader()
        self.closed = False
        self.loop = asyncio.get_running_loop()
        self.heard = 0.0  # when Redis last answered, or the first reply came to be owed
        self.watch: asyncio.TimerHandle | None = None
        self.streams = self.transport.get_protocol()  # told when the transport closes
        self.transport.set_protocol(self)

    def send(self, batch: list[_Request], data: bytes) -> None:
        if not self.sent:
            self.heard = self.loop.time()
            if self.watch is None:
                self.watch = self.loop.call_later(READ_TIMEOUT_S / 2, self._check)
        self.sent.extend(batch)  # first: a failing write fails them with the rest
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.heard = self.loop.time()
        reader, sent, settle = self.reader, self.sent, self.batcher._settle
        try:
            reader.feed(data)
            while (reply := reader.gets()) is not False:
                if isinstance(reply, _PUSH):
                    continue  # RESP3 pushes (invalidations, maintenance) answer nobody
                request = sent[0]
                request.replies.append(reply)
                if len(request.replies) == len(request.ops):
                    sent.popleft()
                    try:
                        settle(request)
                    except Exception as exc:  # a reply of an unexpected shape
                        _fail([request], exc)
        except Exception as exc:  # a reply nobody asked for, or one hiredis refuses
            self.close(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            self.close(exc or RedisConnectionError("Redis closed the connection"))
        finally:
            self.streams.connection_lost(exc)  # redis-py's own close waits for this

    def eof_received(self) -> bool:
        return False  # the transport closes itself; connection_lost follows

    def _check(self) -> None:
        """Every half timeout while replies are owed: has Redis gone silent?"""
        self.watch = None
        if self.closed or not self.sent:
            return
        if self.loop.time() - self.heard >= READ_TIMEOUT_S:
            self.close(TimeoutError(f"no reply from Redis in {READ_TIMEOUT_S} s"))
            return
        self.watch = self.loop.call_later(READ_TIMEOUT_S / 2, self._check)

    def close(self, exc: BaseException) -> None:
        if self.closed:
            return
        self.closed = True
        if not isinstance(exc, RedisError):  # a timeout, a reset: as redis-py says it
            exc = RedisConnectionError(f"Redis connection lost: {exc!r}")
        sent, self.sent = list(self.sent), deque()
        if self.watch is not None:
            self.watch.cancel()
        _fail(sent, exc)
        if not self.transport.is_closing():
            self.transport.abort()
        self.batcher._spawn(self._release())
        if self.batcher._link is self and self.batcher._pending:
            self.batcher._flush()  # callers that came meanwhile go on a new connection

    async def _release(self) -> None:
        with contextlib.suppress(Exception):
            await self.conn.disconnect()
        await self.batcher.redis.connection_pool.release(self.conn)


def _fail(requests: Sequence[_Request], exc: BaseException) -> None:
    for request in requests:
        if not request.future.done():
            request.future.set_exception(exc)
