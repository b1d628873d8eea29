"""Fixtures: a real vectord (`target/release/vectord`, or `VECTORD_BIN`) on a free loopback
port, ephemeral, with an API key; stopped by its PID after the tests."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

REPO = Path(__file__).resolve().parents[3]
API_KEY = "python-client-test-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server() -> Iterator[str]:
    binary = Path(os.environ.get("VECTORD_BIN", REPO / "target" / "release" / "vectord"))
    if not binary.exists():
        pytest.fail(f"{binary} not found: build it first (cargo build --release)")
    port = free_port()
    with tempfile.TemporaryDirectory() as work:
        config = Path(work) / "vectord.toml"
        config.write_text("")
        log = open(Path(work) / "vectord.log", "wb")
        proc = subprocess.Popen(
            [
                str(binary),
                "--config", str(config),
                "--bind", f"127.0.0.1:{port}",
                "--ephemeral",
                "--set", f"vectord.api_key={API_KEY}",
                "--set", "vectord.workers=2",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    raise RuntimeError(
                        "vectord did not start:\n" + (Path(work) / "vectord.log").read_text()
                    )
                time.sleep(0.05)
            yield url
        finally:
            proc.kill()  # by its PID: only the process this fixture started
            proc.wait()
            log.close()


_names = iter(range(1_000_000))


@pytest.fixture
def index_name() -> str:
    """A name no other test uses."""
    return f"t{next(_names)}-{os.getpid()}"
