"""The clients' HTTP: keep-alive HTTP/1.1 connections (TCP_NODELAY, kept in a small pool),
each request written in one piece, each answer read by one reader (`_answer_steps`: status,
headers, a body by length, by chunks or up to the close) that a blocking socket
(`Transport`, threads may share it) or asyncio streams (`AsyncTransport`) feed.

Why not httpx, which the clients first used: measured against a local vectord (20,000 x
384, `bench/pgvector_bench.py`), one search through httpx's sync client cost ~0.9 ms, of
which ~0.7 ms was httpx's own Python, three times what vectord spends on the search and its
HTTP; this way it costs ~0.26 ms, most of it vectord's. A search service's client should not
be its bottleneck.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import threading
from typing import Any, Dict, Generator, List, Optional, Tuple
from urllib.parse import urlsplit

#: Idle connections kept for reuse (more may be open at once, one per concurrent call).
MAX_IDLE = 8


class Response:
    """What the client reads of an answer: status, headers (lower-case names), body."""

    def __init__(self, status_code: int, headers: Dict[str, str], content: bytes):
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class TransportError(Exception):
    """vectord could not be reached, or the connection broke before an answer."""


class _Closed(ConnectionError):
    """The server closed the connection before answering (on a reused connection: its
    keep-alive ran out while it was idle)."""


#: Compact JSON, one encoder for every request (`json.dumps` with options builds one per
#: call).
_JSON = json.JSONEncoder(separators=(",", ":"))

#: Most bytes of an answer's status line and headers.
MAX_HEAD = 64 << 10


class _Reader:
    """Bytes of one connection, read as they are needed."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = bytearray()

    def _more(self) -> bool:
        chunk = self.sock.recv(256 << 10)
        self.buf += chunk
        return bool(chunk)

    def until(self, mark: bytes, limit: int) -> bytes:
        """The bytes before `mark` (taken with it)."""
        while True:
            at = self.buf.find(mark)
            if at >= 0:
                out = bytes(self.buf[:at])
                del self.buf[: at + len(mark)]
                return out
            if len(self.buf) > limit:
                raise ValueError("an answer's headers are too long")
            if not self._more():
                raise _Closed("the connection closed before a whole answer")

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._more():
                raise _Closed("the connection closed in the middle of an answer")
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def rest(self) -> bytes:
        while self._more():
            pass
        return bytes(self.buf)


def _answer_steps(method: str) -> Generator[Tuple[str, Any], bytes, Tuple[Response, bool]]:
    """Reads one answer without doing any I/O itself: it yields what it needs next,
    `("until", mark)` (the bytes before `mark`), `("exactly", n)` or `("rest", None)` (up to
    the close), is sent those bytes, and returns the response and whether the connection
    can take another request. `_read_answer` and `AsyncTransport` drive it."""
    head = (yield ("until", b"\r\n\r\n")).decode("latin-1").split("\r\n")
    version, _, rest = head[0].partition(" ")
    if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
        raise ValueError(f"not an HTTP answer: {head[0][:80]!r}")
    status = int(rest[:3])
    headers: Dict[str, str] = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    keep = headers.get("connection", "").lower() != "close" and version != "HTTP/1.0"
    if method == "HEAD" or status in (204, 304) or status < 200:
        body = b""
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        parts = []
        while True:
            size = int((yield ("until", b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while (yield ("until", b"\r\n")):  # trailers, up to an empty line
                    pass
                break
            parts.append((yield ("exactly", size)))
            yield ("exactly", 2)
        body = b"".join(parts)
    elif "content-length" in headers:
        body = yield ("exactly", int(headers["content-length"]))
    else:
        body, keep = (yield ("rest", None)), False
    return Response(status, headers, body), keep


def _read_answer(reader: _Reader, method: str) -> "tuple[Response, bool]":
    """One answer from a blocking connection."""
    steps = _answer_steps(method)
    try:
        kind, arg = next(steps)
        while True:
            if kind == "until":
                got = reader.until(arg, MAX_HEAD)
            elif kind == "exactly":
                got = reader.exactly(arg)
            else:
                got = reader.rest()
            kind, arg = steps.send(got)
    except StopIteration as done:
        return done.value


def _request_bytes(method: str, path: str, head: str, body: Optional[Any]) -> bytes:
    """One request, written whole: the server reads it in one wake-up."""
    payload = b"" if body is None else _JSON.encode(body).encode()
    lines = f"{method} {path} HTTP/1.1\r\n{head}"
    if body is not None:
        lines += "Content-Type: application/json\r\n"
    return f"{lines}Content-Length: {len(payload)}\r\n\r\n".encode("latin-1") + payload


def _parse_url(url: str) -> "tuple[bool, str, int, str]":
    """(https, host, port, path prefix) of a vectord URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"url {url!r}: give http://host:port or https://host:port")
    https = parts.scheme == "https"
    return https, parts.hostname, parts.port or (443 if https else 80), parts.path.rstrip("/")


def _head(host: str, port: int, default_port: bool, headers: Dict[str, str]) -> str:
    """The headers every request carries, written once."""
    lines = {"Host": host if default_port else f"{host}:{port}", "Accept": "application/json"}
    return "".join(f"{k}: {v}\r\n" for k, v in {**lines, **headers}.items())


class Transport:
    """Sends requests to one vectord (`url`: http or https, with an optional path prefix),
    each with `headers`, over pooled keep-alive connections."""

    def __init__(self, url: str, headers: Dict[str, str], timeout: float):
        self._https, self._host, self._port, self._prefix = _parse_url(url)
        self._head = _head(self._host, self._port, urlsplit(url).port is None, headers)
        self._timeout = timeout
        self._idle: List[socket.socket] = []
        self._lock = threading.Lock()

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self._host, self._port), timeout=self._timeout)
        # Answers are read right after each request: never wait to fill a packet.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._https:
            context = ssl.create_default_context()
            sock = context.wrap_socket(sock, server_hostname=self._host)
        return sock

    def request(self, method: str, path: str, body: Optional[Any] = None) -> Response:
        """Sends one request (`body` encoded as JSON); a connection found closed by the
        server while idle (its keep-alive ran out) is replaced and the request sent once
        more on a new one."""
        request = _request_bytes(method, self._prefix + path, self._head, body)
        for attempt in (0, 1):
            sock, reused = self._take()
            try:
                sock.sendall(request)
                response, keep = _read_answer(_Reader(sock), method)
            except _Closed as e:
                sock.close()
                if reused and attempt == 0:
                    continue
                raise TransportError(str(e)) from e
            except (BrokenPipeError, ConnectionResetError) as e:
                sock.close()
                if reused and attempt == 0:
                    continue
                raise TransportError(str(e) or type(e).__name__) from e
            except (OSError, ValueError) as e:
                sock.close()
                raise TransportError(str(e) or type(e).__name__) from e
            if keep:
                self._give_back(sock)
            else:
                sock.close()
            return response
        raise TransportError("unreachable")  # pragma: no cover - the loop returns or raises

    def _take(self) -> "tuple[socket.socket, bool]":
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        try:
            return self._connect(), False
        except OSError as e:
            raise TransportError(str(e) or type(e).__name__) from e

    def _give_back(self, sock: socket.socket) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE:
                self._idle.append(sock)
                return
        sock.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for sock in idle:
            sock.close()


class AsyncTransport:
    """`Transport` for asyncio: the same requests, written whole, and the same answer
    reader (`_answer_steps`), over pooled asyncio streams. A request cancelled or failed
    half-way closes its connection rather than leave an answer in it for the next one."""

    def __init__(self, url: str, headers: Dict[str, str], timeout: float):
        self._https, self._host, self._port, self._prefix = _parse_url(url)
        self._head = _head(self._host, self._port, urlsplit(url).port is None, headers)
        self._timeout = timeout
        self._idle: List[Tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def request(self, method: str, path: str, body: Optional[Any] = None) -> Response:
        """As `Transport.request`, awaited."""
        request = _request_bytes(method, self._prefix + path, self._head, body)
        for attempt in (0, 1):
            (reader, writer), reused = await self._take()
            try:
                exchange = _exchange(reader, writer, request, method)
                response, keep = await asyncio.wait_for(exchange, self._timeout)
            except (_Closed, BrokenPipeError, ConnectionResetError) as e:
                writer.close()
                if reused and attempt == 0:
                    continue
                raise TransportError(str(e) or type(e).__name__) from e
            except (OSError, ValueError, asyncio.TimeoutError) as e:
                writer.close()
                raise TransportError(str(e) or type(e).__name__) from e
            except BaseException:
                writer.close()
                raise
            if keep and len(self._idle) < MAX_IDLE:
                self._idle.append((reader, writer))
            else:
                writer.close()
            return response
        raise TransportError("unreachable")  # pragma: no cover - the loop returns or raises

    async def _take(self) -> "tuple[tuple[asyncio.StreamReader, asyncio.StreamWriter], bool]":
        if self._idle:
            return self._idle.pop(), True
        context = ssl.create_default_context() if self._https else None
        try:
            opened = asyncio.open_connection(self._host, self._port, ssl=context)
            reader, writer = await asyncio.wait_for(opened, self._timeout)
        except (OSError, asyncio.TimeoutError) as e:
            raise TransportError(str(e) or type(e).__name__) from e
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return (reader, writer), False

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for _, writer in idle:
            writer.close()


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes, method: str
) -> "tuple[Response, bool]":
    writer.write(request)
    await writer.drain()
    steps = _answer_steps(method)
    try:
        kind, arg = next(steps)
        while True:
            try:
                if kind == "until":
                    got = (await reader.readuntil(arg))[: -len(arg)]
                elif kind == "exactly":
                    got = await reader.readexactly(arg)
                else:
                    got = await reader.read()
            except asyncio.IncompleteReadError as e:
                raise _Closed("the connection closed before a whole answer") from e
            except asyncio.LimitOverrunError as e:
                raise ValueError("an answer's headers are too long") from e
            kind, arg = steps.send(got)
    except StopIteration as done:
        return done.value
