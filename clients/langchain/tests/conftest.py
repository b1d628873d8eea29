"""Fixtures: a real vectord (`target/release/vectord`, or `VECTORD_BIN`), ephemeral, with
an API key, for the whole session (see `vectord.testing`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from vectord.testing import running_vectord

REPO = Path(__file__).resolve().parents[3]
API_KEY = "python-client-test-key"


@pytest.fixture(scope="session")
def server() -> Iterator[str]:
    binary = Path(os.environ.get("VECTORD_BIN", REPO / "target" / "release" / "vectord"))
    with running_vectord(binary, API_KEY) as url:
        yield url


_names = iter(range(1_000_000))


@pytest.fixture
def index_name() -> str:
    """A name no other test uses."""
    return f"t{next(_names)}-{os.getpid()}"
