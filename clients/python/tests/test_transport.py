"""The blocking client's own HTTP transport: shared by threads, and a connection that the
server closed while idle (its keep-alive ran out) replaced without the caller noticing."""

from __future__ import annotations

import threading
import time

import pytest

from vectord import Client

from .conftest import API_KEY


def test_threads_share_one_client(server: str, index_name: str):
    with Client(server, api_key=API_KEY) as client:
        client.create_index(index_name, 2, "l2")
        client.add(index_name, [f"i{j}" for j in range(100)], [[float(j), 1.0] for j in range(100)])
        wrong: list = []

        def work(offset: int) -> None:
            for j in range(offset, 100, 8):
                hits = client.search(index_name, [float(j), 1.0], k=1)
                if [h.id for h in hits] != [f"i{j}"]:
                    wrong.append((j, hits))

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert wrong == []
        assert len(client._http._idle) <= 8


def test_a_connection_closed_while_idle_is_replaced(server: str, index_name: str):
    with Client(server, api_key=API_KEY) as client:
        client.create_index(index_name, 2, "l2")
        idle = client._http._idle[0]
        # vectord (actix-web) closes a connection idle for 5 s
        time.sleep(6)
        assert client.add(index_name, ["a"], [[1.0, 0.0]]) == 1
        assert client._http._idle and client._http._idle[0] is not idle
        assert client.count(index_name) == 1  # the add was applied once


def test_urls_other_than_http_are_refused():
    with pytest.raises(ValueError):
        Client("ftp://127.0.0.1:1")


def _canned_server(answers: list) -> "tuple[str, threading.Thread]":
    """A server on a free loopback port that reads one request per answer, sends the
    answer's bytes, and closes after the last one: the HTTP forms a proxy in front of
    vectord may use (chunks, no length, Connection: close)."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            for answer in answers:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")]
                while length and len(body) < length[0]:
                    body += conn.recv(65536)
                conn.sendall(answer)
        listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}", thread


def test_chunked_closing_and_unsized_answers_are_read_whole():
    from vectord._transport import Transport

    url, thread = _canned_server(
        [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"4\r\n{\"a\"\r\n3;ext=1\r\n: 1\r\n1\r\n}\r\n0\r\nX-Trailer: t\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}",
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n[1, 2]",
        ]
    )
    transport = Transport(url, {}, timeout=5)
    first = transport.request("POST", "/x", {"q": 1})
    assert (first.status_code, first.json()) == (200, {"a": 1})
    second = transport.request("GET", "/y")
    assert (second.status_code, second.content) == (404, b"{}")
    third = transport.request("GET", "/z")  # no length: read up to the close
    assert third.json() == [1, 2] and third.headers["content-type"] == "application/json"
    assert transport._idle == []  # a connection closed by the answer is not kept
    thread.join(5)
