"""LangChain's own standard tests of a vector store (`langchain_tests`), sync and async,
against a real vectord."""

from __future__ import annotations

from typing import Iterator

import pytest
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests.vectorstores import VectorStoreIntegrationTests

from langchain_vectord import VectordVectorStore
from vectord import Client

from .conftest import API_KEY

_count = iter(range(1_000_000))


class TestVectordStandard(VectorStoreIntegrationTests):
    @pytest.fixture()
    def vectorstore(self, server: str) -> Iterator[VectorStore]:  # type: ignore[override]
        """An empty store over an index of its own, deleted afterwards."""
        name = f"lc-{next(_count)}"
        store = VectordVectorStore(self.get_embeddings(), name, url=server, api_key=API_KEY)
        try:
            yield store
        finally:
            with Client(server, api_key=API_KEY) as client:
                try:
                    client.delete_index(name)
                except Exception:
                    pass
