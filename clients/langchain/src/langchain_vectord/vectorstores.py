"""`VectordVectorStore`: a LangChain vector store over one vectord index.

A document's text is stored as the item's document (vectord keeps it apart from metadata,
up to `vectord.max_document_bytes`, 1 MiB by default), so filters and metadata see only
the document's own metadata. The index is created at the first add, with the embedding's
dimension, unless it exists.
"""

from __future__ import annotations

import uuid
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Type

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from vectord import AsyncClient, Client, NotFound
from vectord import SearchResult

class VectordVectorStore(VectorStore):
    """LangChain's `VectorStore` over a vectord index.

    >>> store = VectordVectorStore(embeddings, index_name="docs", url="http://127.0.0.1:3215")
    >>> store.add_texts(["vectord is fast"], metadatas=[{"lang": "en"}])
    >>> store.similarity_search("fast", k=4, filter={"lang": "en"})

    `filter` is vectord's (Chroma's `where` syntax: `{"year": {"$gte": 2021}}`, `$and`,
    `$or`, `$in`, ...). Scores of `similarity_search_with_score` are vectord's distances
    (lower is nearer); `similarity_search_with_relevance_scores` turns them into 0-1.
    """

    def __init__(
        self,
        embedding: Embeddings,
        index_name: str,
        *,
        url: str = "http://127.0.0.1:3215",
        api_key: Optional[str] = None,
        distance: str = "cosine",
        fields: Optional[Mapping[str, str]] = None,
        client: Optional[Client] = None,
        async_client: Optional[AsyncClient] = None,
    ):
        self._embedding = embedding
        self.index_name = index_name
        self.distance = distance
        self.fields = dict(fields) if fields else None
        self.client = client or Client(url, api_key=api_key)
        self.async_client = async_client or AsyncClient(url, api_key=api_key)
        self._created = False

    @property
    def embeddings(self) -> Embeddings:
        return self._embedding

    # -- adding ---------------------------------------------------------------------------

    def _items(
        self,
        texts: Sequence[str],
        metadatas: Optional[Sequence[Optional[dict]]],
        ids: Optional[Sequence[Optional[str]]],
    ) -> Tuple[List[str], List[Dict[str, Any]]]:
        if metadatas is not None and len(metadatas) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(metadatas)} metadatas")
        if ids is not None and len(ids) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(ids)} ids")
        out_ids = [
            (ids[i] if ids is not None and ids[i] else None) or str(uuid.uuid4())
            for i in range(len(texts))
        ]
        metas = [dict(m or {}) for m in metadatas] if metadatas is not None else []
        return out_ids, metas or [{} for _ in texts]

    def _ensure_index(self, dim: int) -> None:
        if self._created:
            return
        try:
            self.client.get_index(self.index_name)
        except NotFound:
            self.client.create_index(self.index_name, dim, self.distance, fields=self.fields)
        self._created = True

    async def _aensure_index(self, dim: int) -> None:
        if self._created:
            return
        try:
            await self.async_client.get_index(self.index_name)
        except NotFound:
            await self.async_client.create_index(
                self.index_name, dim, self.distance, fields=self.fields
            )
        self._created = True

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: Optional[List[dict]] = None,
        *,
        ids: Optional[List[str]] = None,
        **kwargs: Any,
    ) -> List[str]:
        """Embeds and adds (or replaces, by id) the texts; returns their ids."""
        texts = list(texts)
        if not texts:
            return []
        item_ids, metas = self._items(texts, metadatas, ids)
        vectors = self.embeddings.embed_documents(texts)
        self._ensure_index(len(vectors[0]))
        self.client.add(self.index_name, item_ids, vectors, metas, documents=texts, **kwargs)
        return item_ids

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: Optional[List[dict]] = None,
        *,
        ids: Optional[List[str]] = None,
        **kwargs: Any,
    ) -> List[str]:
        texts = list(texts)
        if not texts:
            return []
        item_ids, metas = self._items(texts, metadatas, ids)
        vectors = await self.embeddings.aembed_documents(texts)
        await self._aensure_index(len(vectors[0]))
        await self.async_client.add(
            self.index_name, item_ids, vectors, metas, documents=texts, **kwargs
        )
        return item_ids

    def add_documents(self, documents: List[Document], **kwargs: Any) -> List[str]:
        """Adds documents; a document's `id` is its item id unless `ids` says otherwise."""
        if "ids" not in kwargs:
            kwargs["ids"] = [d.id for d in documents]
        return self.add_texts(
            [d.page_content for d in documents], [d.metadata for d in documents], **kwargs
        )

    async def aadd_documents(self, documents: List[Document], **kwargs: Any) -> List[str]:
        if "ids" not in kwargs:
            kwargs["ids"] = [d.id for d in documents]
        return await self.aadd_texts(
            [d.page_content for d in documents], [d.metadata for d in documents], **kwargs
        )

    # -- reading back ---------------------------------------------------------------------

    @staticmethod
    def _document(found: Any) -> Document:
        """A LangChain document from an item or a search result of vectord."""
        return Document(
            id=found.id, page_content=found.document or "", metadata=dict(found.metadata or {})
        )

    def get_by_ids(self, ids: Sequence[str], /) -> List[Document]:
        """The documents of `ids` that exist, in the order of `ids`."""
        try:
            page = self.client.get(self.index_name, list(ids), include_documents=True)
        except NotFound:
            return []
        return [self._document(i) for i in page.items]

    async def aget_by_ids(self, ids: Sequence[str], /) -> List[Document]:
        try:
            page = await self.async_client.get(
                self.index_name, list(ids), include_documents=True
            )
        except NotFound:
            return []
        return [self._document(i) for i in page.items]

    def delete(self, ids: Optional[List[str]] = None, **kwargs: Any) -> Optional[bool]:
        """Deletes the documents of `ids` (absent ones are no error), or those passing
        `filter=`; True when the call went through."""
        filter = kwargs.get("filter")
        if not ids and not filter:
            return None
        try:
            self.client.delete(self.index_name, ids, filter=filter)
        except NotFound:
            pass
        return True

    async def adelete(self, ids: Optional[List[str]] = None, **kwargs: Any) -> Optional[bool]:
        filter = kwargs.get("filter")
        if not ids and not filter:
            return None
        try:
            await self.async_client.delete(self.index_name, ids, filter=filter)
        except NotFound:
            pass
        return True

    # -- search ---------------------------------------------------------------------------

    def _scored(self, results: List[SearchResult]) -> List[Tuple[Document, float]]:
        return [(self._document(r), r.distance) for r in results]

    def similarity_search_by_vector_with_score(
        self, embedding: List[float], k: int = 4, filter: Optional[dict] = None, **kwargs: Any
    ) -> List[Tuple[Document, float]]:
        try:
            results = self.client.search(
                self.index_name, embedding, k, filter=filter, include_documents=True, **kwargs
            )
        except NotFound:
            return []
        return self._scored(results)

    async def asimilarity_search_by_vector_with_score(
        self, embedding: List[float], k: int = 4, filter: Optional[dict] = None, **kwargs: Any
    ) -> List[Tuple[Document, float]]:
        try:
            results = await self.async_client.search(
                self.index_name, embedding, k, filter=filter, include_documents=True, **kwargs
            )
        except NotFound:
            return []
        return self._scored(results)

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Optional[dict] = None, **kwargs: Any
    ) -> List[Tuple[Document, float]]:
        """Documents nearest to `query`, with vectord's distance (lower is nearer)."""
        vector = self.embeddings.embed_query(query)
        return self.similarity_search_by_vector_with_score(vector, k, filter, **kwargs)

    async def asimilarity_search_with_score(
        self, query: str, k: int = 4, filter: Optional[dict] = None, **kwargs: Any
    ) -> List[Tuple[Document, float]]:
        vector = await self.embeddings.aembed_query(query)
        return await self.asimilarity_search_by_vector_with_score(vector, k, filter, **kwargs)

    def similarity_search(
        self, query: str, k: int = 4, filter: Optional[dict] = None, **kwargs: Any
    ) -> List[Document]:
        return [d for d, _ in self.similarity_search_with_score(query, k, filter, **kwargs)]

    async def asimilarity_search(
        self, query: str, k: int = 4, filter: Optional[dict] = None, **kwargs: Any
    ) -> List[Document]:
        found = await self.asimilarity_search_with_score(query, k, filter, **kwargs)
        return [d for d, _ in found]

    def similarity_search_by_vector(
        self, embedding: List[float], k: int = 4, filter: Optional[dict] = None, **kwargs: Any
    ) -> List[Document]:
        found = self.similarity_search_by_vector_with_score(embedding, k, filter, **kwargs)
        return [d for d, _ in found]

    async def asimilarity_search_by_vector(
        self, embedding: List[float], k: int = 4, filter: Optional[dict] = None, **kwargs: Any
    ) -> List[Document]:
        found = await self.asimilarity_search_by_vector_with_score(embedding, k, filter, **kwargs)
        return [d for d, _ in found]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """vectord's distances as LangChain's 0-1 relevance (1 is nearest)."""
        if self.distance == "cosine":
            return lambda d: 1.0 - d
        if self.distance == "ip":
            return self._max_inner_product_relevance_score_fn
        return self._euclidean_relevance_score_fn

    # -- max marginal relevance -----------------------------------------------------------

    def _mmr(
        self, query: List[float], results: List[SearchResult], k: int, lambda_mult: float
    ) -> List[Document]:
        if not results:
            return []
        vectors = [r.vector or [] for r in results]
        chosen = maximal_marginal_relevance(
            np.array(query, dtype=np.float32), vectors, k=k, lambda_mult=lambda_mult
        )
        return [self._document(results[i]) for i in chosen]

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: List[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Optional[dict] = None,
        **kwargs: Any,
    ) -> List[Document]:
        """`fetch_k` nearest documents (with their vectors), of which `k` are chosen for
        both nearness and diversity."""
        try:
            results = self.client.search(
                self.index_name,
                embedding,
                fetch_k,
                filter=filter,
                include_vectors=True,
                include_documents=True,
            )
        except NotFound:
            return []
        return self._mmr(embedding, results, k, lambda_mult)

    async def amax_marginal_relevance_search_by_vector(
        self,
        embedding: List[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Optional[dict] = None,
        **kwargs: Any,
    ) -> List[Document]:
        try:
            results = await self.async_client.search(
                self.index_name,
                embedding,
                fetch_k,
                filter=filter,
                include_vectors=True,
                include_documents=True,
            )
        except NotFound:
            return []
        return self._mmr(embedding, results, k, lambda_mult)

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Optional[dict] = None,
        **kwargs: Any,
    ) -> List[Document]:
        vector = self.embeddings.embed_query(query)
        return self.max_marginal_relevance_search_by_vector(
            vector, k, fetch_k, lambda_mult, filter, **kwargs
        )

    async def amax_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Optional[dict] = None,
        **kwargs: Any,
    ) -> List[Document]:
        vector = await self.embeddings.aembed_query(query)
        return await self.amax_marginal_relevance_search_by_vector(
            vector, k, fetch_k, lambda_mult, filter, **kwargs
        )

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def from_texts(
        cls: Type["VectordVectorStore"],
        texts: List[str],
        embedding: Embeddings,
        metadatas: Optional[List[dict]] = None,
        *,
        ids: Optional[List[str]] = None,
        index_name: str = "langchain",
        **kwargs: Any,
    ) -> "VectordVectorStore":
        """A store over `index_name` (created when missing) holding `texts`."""
        store = cls(embedding, index_name, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    @classmethod
    async def afrom_texts(
        cls: Type["VectordVectorStore"],
        texts: List[str],
        embedding: Embeddings,
        metadatas: Optional[List[dict]] = None,
        *,
        ids: Optional[List[str]] = None,
        index_name: str = "langchain",
        **kwargs: Any,
    ) -> "VectordVectorStore":
        store = cls(embedding, index_name, **kwargs)
        await store.aadd_texts(texts, metadatas, ids=ids)
        return store
