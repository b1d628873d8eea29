"""A real vectord for tests: started on a free loopback port, ephemeral, stopped by its
PID. Used by this package's tests and by langchain-vectord's."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator, Optional


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_vectord(binary: Path, api_key: Optional[str] = None) -> Iterator[str]:
    """Starts `binary` (a built vectord) and yields its URL once ready; stops it after."""
    if not binary.exists():
        raise FileNotFoundError(f"{binary} not found: build it first (cargo build --release)")
    port = free_port()
    with tempfile.TemporaryDirectory() as work:
        config = Path(work) / "vectord.toml"
        config.write_text("")
        log_path = Path(work) / "vectord.log"
        args = [str(binary), "--config", str(config), "--bind", f"127.0.0.1:{port}",
                "--ephemeral", "--set", "vectord.workers=2"]
        if api_key:
            args += ["--set", f"vectord.api_key={api_key}"]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
            url = f"http://127.0.0.1:{port}"
            try:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        with urllib.request.urlopen(f"{url}/ready", timeout=1) as answer:
                            if answer.status == 200:
                                break
                    except OSError:  # refused, not ready (503), or timed out
                        pass
                    if proc.poll() is not None or time.monotonic() > deadline:
                        log.flush()
                        raise RuntimeError("vectord did not start:\n" + log_path.read_text())
                    time.sleep(0.05)
                yield url
            finally:
                proc.kill()  # by its PID: only the process started here
                proc.wait()
