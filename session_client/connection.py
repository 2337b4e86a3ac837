"""What the speaker and listener clients share: one logical connection to the service across the WebSocket
connections that carry it.

A :class:`Connection` opens a WebSocket with a query-string action and reads its first message (the one the service
sends without being asked); then a reader task types every frame (:mod:`session_client.messages`) and either answers
the request waiting for it (requests go one at a time, so a reply is the waiting request's) or delivers it to the
client's message stream or callback. A timer sends ``heartbeat``; ``connectionRefreshRequired`` opens the
replacement connection (``refreshConnection``), moves to it and closes the old one; a connection that drops while
the client still wants it is replaced by the subclass's ``_reopen`` (a speaker resumes its session, a listener joins
again) after :class:`Backoff`'s delays.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import urlencode

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from lambda_src.contract import routes
from session_client import messages
from session_client.messages import ConnectionRefreshComplete, ConnectionRefreshRequired, ErrorMessage, ServerMessage

_log = logging.getLogger(__name__)

# The field that names an action, in a message and on the WebSocket URL alike (the route selection expression's).
ACTION = routes.ACTION
# The local run's address (`make local`, PORT 8080, stage dev).
DEFAULT_URL = "ws://127.0.0.1:8080/dev"
# API Gateway closes a connection idle for 10 minutes; a heartbeat a minute keeps it open and brings the refresh
# notice (sent on the first heartbeat from 100 minutes) well before the 2-hour limit.
HEARTBEAT_INTERVAL_SECONDS = 60.0
REPLY_TIMEOUT_SECONDS = 15.0
OPEN_TIMEOUT_SECONDS = 15.0
# Handshake statuses that no repeat can change: malformed (400), not allowed (401, 403), gone (404), ended (410).
FINAL_STATUSES = frozenset({400, 401, 403, 404, 410})


class Socket(Protocol):
    """The part of a WebSocket connection the clients use (``websockets``' client connection has it)."""

    async def send(self, message: str) -> None: ...

    async def recv(self) -> str | bytes: ...

    async def close(self) -> None: ...


Connector = Callable[[str], Awaitable[Socket]]


class ServiceRefused(Exception):
    """The service answered a request, or a connection's first message, with ``error``."""

    def __init__(self, error: ErrorMessage) -> None:
        super().__init__(f"{error.code}: {error.message}")
        self.error = error


class HandshakeRefused(Exception):
    """The service refused to open a connection: the HTTP ``status`` and, when the body held one, the ``error``."""

    def __init__(self, status: int, error: ErrorMessage | None = None) -> None:
        super().__init__(f"handshake refused with {status}" + (f": {error.code}: {error.message}" if error else ""))
        self.status = status
        self.error = error


class ConnectionLost(Exception):
    """The connection dropped and could not be replaced (the service refused, or the time to retry ran out)."""


async def websocket_connector(url: str) -> Socket:
    """Open a WebSocket with ``websockets``; a refused handshake becomes :class:`HandshakeRefused`."""
    try:
        return await connect(url, open_timeout=OPEN_TIMEOUT_SECONDS, max_size=None)
    except InvalidStatus as refused:
        raise HandshakeRefused(refused.response.status_code, _error_of(refused.response.body)) from refused


def _error_of(body: bytes | bytearray | None) -> ErrorMessage | None:
    try:
        message = messages.parse(bytes(body or b""))
    except messages.MessageFormatError:
        return None
    return message if isinstance(message, ErrorMessage) else None


@dataclass(frozen=True)
class Backoff:
    """Delays between attempts to open a connection again: exponential from ``initial``, at most ``maximum``, each
    drawn uniformly below its ceiling ("full jitter", so that an audience dropped at once does not return at once)."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    draw: Callable[[float, float], float] = random.uniform

    def delays(self) -> Iterator[float]:
        ceiling = self.initial
        while True:
            yield self.draw(0.0, ceiling)
            ceiling = min(self.maximum, ceiling * self.factor)


Expectation = Callable[[ServerMessage], bool]
_Delivered = TypeVar("_Delivered")


def call_back(callback: Callable[[_Delivered], object], delivered: _Delivered) -> None:
    """Call a client's callback with what it is given; its exception is logged, and the connection goes on (the
    callback runs on the reader, which would otherwise take the exception for a broken connection)."""
    try:
        callback(delivered)
    except Exception:
        _log.exception("a callback failed on a %s", type(delivered).__name__)


def of_type(*types: str) -> Expectation:
    """A reply expectation: a message of one of ``types``."""
    return lambda message: message.type in types


@dataclass
class _Pending:
    action: str
    expects: Expectation
    reply: asyncio.Future[ServerMessage]

    def answered_by(self, message: ServerMessage) -> bool:
        """Whether ``message`` is this request's reply: what ``expects`` recognises, or an ``error`` refusing this
        action (one naming no action is taken as this request's: nothing else is waiting). An error refusing
        another action (a chunk of audio still in flight) is not this request's."""
        if isinstance(message, ErrorMessage):
            return message.action is None or message.action == self.action
        return self.expects(message)


class Connection:
    """One logical connection to the service (see the module's docstring). Subclasses say what the first
    connection, a refresh and a reopening after a drop are (``_refresh_query``, ``_reopen``)."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        connector: Connector = websocket_connector,
        heartbeat_interval: float | None = HEARTBEAT_INTERVAL_SECONDS,
        reply_timeout: float = REPLY_TIMEOUT_SECONDS,
        backoff: Backoff | None = None,
        on_message: Callable[[ServerMessage], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``url``: the service's WebSocket URL (stage included). ``connector`` opens a WebSocket (tests give a fake
        one). ``heartbeat_interval``: seconds between heartbeats (None: none). ``reply_timeout``: how long a request
        waits for its reply. ``backoff``: the delays between attempts to reopen a dropped connection.
        ``on_message``: called with every message that is not a reply, on the reader (it must not block; an exception
        it raises is logged); when given, the stream (``async for``) stays empty. ``sleep`` and ``clock``: the
        waits and the time the reopening uses (tests give fake ones)."""
        self.url = url
        self.connection_id: str | None = None
        self.session_id: str | None = None
        self.failure: BaseException | None = None
        self._connector = connector
        self._heartbeat_interval = heartbeat_interval
        self._reply_timeout = reply_timeout
        self._backoff = backoff or Backoff()
        self._on_message = on_message
        self._sleep = sleep
        self._clock = clock
        self._socket: Socket | None = None
        self._incoming: asyncio.Queue[ServerMessage | None] = asyncio.Queue()
        self._pending: _Pending | None = None
        self._request_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._readers: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._finished = False
        self._ended = False
        self._refreshing = False

    # -- what subclasses define ----------------------------------------------------------------------------------
    def _refresh_query(self) -> dict[str, str]:
        raise NotImplementedError

    async def _reopen(self) -> None:
        """Replace a dropped connection (or raise :class:`ConnectionLost`)."""
        raise NotImplementedError

    def _welcomed(self, first: ServerMessage) -> None:
        """Note what a new connection's first message says (its connection id)."""
        self.connection_id = getattr(first, "connection_id", self.connection_id)

    # -- opening ------------------------------------------------------------------------------------------------
    async def _open(self, query: dict[str, str], first_type: str) -> ServerMessage:
        """Open a WebSocket with ``query``, read its first message (``first_type``), and make it the client's."""
        socket = await self._connector(f"{self.url}?{urlencode(query)}")
        try:
            first = messages.parse(await asyncio.wait_for(socket.recv(), self._reply_timeout))
            if isinstance(first, ErrorMessage):
                raise ServiceRefused(first)
            if first.type != first_type:
                raise messages.MessageFormatError(f"expected {first_type} first, got {first.type}")
        except BaseException:
            await socket.close()
            raise
        self._welcomed(first)
        await self._attach(socket)
        return first

    async def _attach(self, socket: Socket) -> None:
        """Make ``socket`` the client's connection (after any request in flight on the old one), close the old one,
        and start reading the new one (and the heartbeat, the first time)."""
        if self._closing:  # a refresh or reopening that finished after close()
            await socket.close()
            raise ConnectionClosed(None, None)
        async with self._request_lock:
            old, self._socket = self._socket, socket
        reader = asyncio.create_task(self._read(socket))
        self._readers.add(reader)
        reader.add_done_callback(self._readers.discard)
        if old is not None:
            await old.close()
        if self._heartbeat_interval is not None and not any(t.get_name() == "heartbeat" for t in self._tasks):
            self._spawn(self._heartbeats(self._heartbeat_interval), "heartbeat")

    async def _open_again(
        self, query: Callable[[], dict[str, str]], first_type: str, *, deadline: float | None, attempts: int | None
    ) -> ServerMessage:
        """Open a replacement connection, retrying after :class:`Backoff`'s delays until the service gives a
        final refusal (``FINAL_STATUSES``, or an error message), ``deadline`` (on ``clock``) passes, or ``attempts``
        are spent."""
        delays = self._backoff.delays()
        tried = 0
        while True:
            tried += 1
            try:
                return await self._open(query(), first_type)
            except HandshakeRefused as refused:
                if refused.status in FINAL_STATUSES:
                    raise ConnectionLost(str(refused)) from refused
                problem: BaseException = refused
            except ServiceRefused as refused:
                raise ConnectionLost(str(refused)) from refused
            except (OSError, TimeoutError, ConnectionClosed, messages.MessageFormatError) as error:
                problem = error
            delay = next(delays)
            out_of_time = deadline is not None and self._clock() + delay > deadline
            if (attempts is not None and tried >= attempts) or out_of_time or self._closing:
                raise ConnectionLost(f"gave up after {tried} attempts: {problem}") from problem
            _log.info("reconnecting in %.1f s (%s)", delay, problem)
            await self._sleep(delay)

    # -- reading ------------------------------------------------------------------------------------------------
    async def _read(self, socket: Socket) -> None:
        try:
            while True:
                frame = await socket.recv()
                try:
                    message = messages.parse(frame)
                except messages.MessageFormatError as error:
                    _log.warning("ignored a frame that is not a server message: %s", error)
                    continue
                self._dispatch(message)
        except ConnectionClosed:
            pass
        except Exception:  # a broken transport: the same as a drop
            _log.exception("reading the connection failed")
        if socket is self._socket and not self._closing:
            self._socket = None
            self._fail_pending()
            if self._ended:
                self._finish()
            else:
                self._spawn(self._recover(), "reopen")

    def _dispatch(self, message: ServerMessage) -> None:
        if isinstance(message, messages.SessionEnded):
            self._ended = True
        pending = self._pending
        if pending is not None and pending.answered_by(message) and not pending.reply.done():
            pending.reply.set_result(message)
            return
        # connectionWarning (every heartbeat from 105 minutes) asks again for a refresh that has not happened.
        if isinstance(message, ConnectionRefreshRequired) and not self._refreshing:
            self._spawn(self._refresh(), "refresh")
        self._deliver(message)

    def _deliver(self, message: ServerMessage) -> None:
        if self._on_message is not None:
            call_back(self._on_message, message)
        else:
            self._incoming.put_nowait(message)

    def _fail_pending(self) -> None:
        if self._pending is not None and not self._pending.reply.done():
            self._pending.reply.set_exception(ConnectionClosed(None, None))

    async def _recover(self) -> None:
        try:
            await self._reopen()
        except ConnectionLost as lost:
            _log.warning("connection lost: %s", lost)
            self.failure = lost
            self._finish()

    # -- requests -----------------------------------------------------------------------------------------------
    async def request(self, action: str, expects: Expectation, **fields: Any) -> ServerMessage:
        """Send ``action`` with ``fields`` and return the reply ``expects`` recognises; an ``error`` refusing it
        raises :class:`ServiceRefused`. Messages that arrive meanwhile and are not the reply (an error refusing a
        chunk of audio sent before it among them) go to the stream."""
        async with self._request_lock:
            if self._socket is None:
                raise ConnectionClosed(None, None)
            pending = _Pending(action, expects, asyncio.get_running_loop().create_future())
            self._pending = pending
            try:
                await self._socket.send(json.dumps({ACTION: action, **fields}))
                reply = await asyncio.wait_for(pending.reply, self._reply_timeout)
            finally:
                self._pending = None
        if isinstance(reply, ErrorMessage):
            raise ServiceRefused(reply)
        return reply

    async def send(self, action: str, **fields: Any) -> None:
        """Send ``action`` without waiting for its reply (which goes to the stream)."""
        if self._socket is None:
            raise ConnectionClosed(None, None)
        await self._socket.send(json.dumps({ACTION: action, **fields}))

    async def heartbeat(self) -> messages.HeartbeatAck:
        reply = await self.request("heartbeat", of_type(messages.HeartbeatAck.TYPE))
        assert isinstance(reply, messages.HeartbeatAck)
        return reply

    async def _heartbeats(self, interval: float) -> None:
        while not self._closing:
            await self._sleep(interval)
            try:
                await self.heartbeat()
            except (ServiceRefused, ConnectionClosed, TimeoutError) as error:
                _log.info("heartbeat not answered: %s", error)

    async def refresh(self) -> ConnectionRefreshComplete:
        """Move to a new connection (``refreshConnection``) and close the old one."""
        self._refreshing = True
        try:
            complete = await self._open(self._refresh_query(), ConnectionRefreshComplete.TYPE)
        finally:
            self._refreshing = False
        assert isinstance(complete, ConnectionRefreshComplete)
        return complete

    async def _refresh(self) -> None:
        try:
            await self.refresh()
        except (HandshakeRefused, ServiceRefused, OSError, TimeoutError, ConnectionClosed) as error:
            # The old connection still works until API Gateway's limit; a drop then reopens the session.
            _log.warning("refresh failed: %s", error)

    # -- the message stream and closing -------------------------------------------------------------------------
    async def messages(self) -> AsyncIterator[ServerMessage]:
        """Every message that is not a reply to a request, in order, until the client is closed, its session
        ends (after ``sessionEnded``), or its connection is lost for good (``failure`` says why)."""
        while (message := await self._incoming.get()) is not None:
            yield message
        self._incoming.put_nowait(None)  # the end, for the next reader too

    def received(self) -> list[ServerMessage]:
        """The messages already in the stream, taken from it without waiting for more."""
        taken: list[ServerMessage] = []
        while not self._incoming.empty():
            message = self._incoming.get_nowait()
            if message is None:
                self._incoming.put_nowait(None)
                break
            taken.append(message)
        return taken

    def __aiter__(self) -> AsyncIterator[ServerMessage]:
        return self.messages()

    async def next_message(self, *types: str, timeout: float | None = None) -> ServerMessage:
        """The next message of one of ``types`` (any, without types) from the stream, skipping others."""
        async with asyncio.timeout(timeout):
            while (message := await self._incoming.get()) is not None:
                if not types or message.type in types:
                    return message
        self._incoming.put_nowait(None)
        raise ConnectionLost("the message stream ended") from self.failure

    def _spawn(self, work: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(work)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _finish(self) -> None:
        if not self._finished:
            self._finished = True
            self._incoming.put_nowait(None)

    @property
    def is_open(self) -> bool:
        return self._socket is not None and not self._closing

    async def close(self) -> None:
        """Stop the heartbeat and any reconnection, close the connection, and end the message stream."""
        self._closing = True
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        socket, self._socket = self._socket, None
        if socket is not None:
            with contextlib.suppress(Exception):
                await socket.close()
        for reader in list(self._readers):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(reader, 5)
        self._finish()

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
