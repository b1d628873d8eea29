"""`Client` and `AsyncClient`: every endpoint of vectord (docs/API.md and its extensions),
both over their own keep-alive HTTP/1.1 (`_transport` says why, and how). Both build their requests with `_requests`; the methods that are one request
are written once (`_Api`), and return a value from `Client` and an awaitable from
`AsyncClient`. Vectors go out as base64 of little-endian f32 values (`base64_vectors`,
on by default; JSON numbers otherwise), and come back so when asked for. A 503 `busy` answer is retried after its `Retry-After`, for at most
`max_busy_wait` seconds in all, before `Busy` is raised."""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator, Dict, Iterator, List, Mapping, Optional, Sequence

from . import _requests as rq
from . import _transport
from ._errors import Busy, Unavailable, VectordError, error_from
from ._requests import Call, Filter, Item, Metadata, Page, SearchResult

DEFAULT_URL = "http://127.0.0.1:3215"
#: Items per `add` request, unless told otherwise.
DEFAULT_BATCH = 1000


class _Api:
    """The endpoints that are one request each; `_run` sends it."""

    #: Vectors sent as base64 of little-endian f32 (else JSON numbers).
    base64_vectors: bool = True

    def _run(self, call: Call) -> Any:  # pragma: no cover - defined by the subclasses
        raise NotImplementedError

    # -- service ------------------------------------------------------------------------

    def _wire_vectors(self, vectors: Any) -> List[Any]:
        if self.base64_vectors:
            return [rq.to_base64(v) for v in _rows(vectors)]
        return rq.as_vectors(vectors)

    def health(self) -> Any:
        """`GET /health`: status, index count, persistence, load failures."""
        return self._run(Call("GET", "/health"))

    # -- indexes ------------------------------------------------------------------------

    def create_index(
        self,
        name: str,
        dim: int,
        distance: str = "cosine",
        *,
        m: Optional[int] = None,
        ef_construction: Optional[int] = None,
        ef_search: Optional[int] = None,
        fields: Optional[Mapping[str, str]] = None,
        quantization: Optional[Mapping[str, Any]] = None,
        on_disk: bool = False,
    ) -> Any:
        """Creates an index (`distance`: cosine, l2 or ip; `fields`: metadata fields to
        index, `{"lang": "keyword", "year": "integer"}`; `quantization`: `{"type": "int8"}`
        to search on a byte per value, rescored in f32; `on_disk`: sealed vectors in
        memory-mapped files on the server instead of RAM); returns its info."""
        return self._run(
            rq.create_index(
                name,
                dim,
                distance,
                m,
                ef_construction,
                ef_search,
                fields,
                quantization,
                on_disk,
            )
        )

    def list_indexes(self) -> Any:
        """Every index's info, sorted by name."""
        return self._run(rq.list_indexes())

    def get_index(self, name: str) -> Any:
        """One index's info (count, parameters, fields, sizes, saves)."""
        return self._run(rq.get_index(name))

    def delete_index(self, name: str) -> Any:
        """Deletes an index and its stored copy."""
        return self._run(rq.delete_index(name))

    def flush(self, name: str) -> Any:
        """Waits until every change made before is stored; True when persisted."""
        return self._run(rq.flush(name))

    def declare_fields(self, name: str, fields: Mapping[str, str]) -> Any:
        """Indexes more metadata fields; returns every field indexed."""
        return self._run(rq.declare_fields(name, fields))

    # -- items --------------------------------------------------------------------------

    def get_item(self, name: str, id: str) -> Any:
        """One item (vector and metadata), or None when it is not there."""
        return self._run(rq.get_item(name, id))

    def delete_item(self, name: str, id: str) -> Any:
        """Deletes one item; False when it was not there."""
        return self._run(rq.delete_item(name, id))

    def get(
        self,
        name: str,
        ids: Optional[Sequence[str]] = None,
        *,
        filter: Optional[Filter] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
        include_metadata: bool = True,
        include_vectors: bool = False,
        include_documents: bool = False,
    ) -> Any:
        """Items by ids (in their order, absent ones left out) and/or filter, or a page of
        the whole index in id order after `cursor`: a `Page`."""
        include = rq.include_list(include_metadata, include_vectors, include_documents)
        return self._run(rq.get(name, ids, filter, limit, cursor, include))

    def count(self, name: str, filter: Optional[Filter] = None) -> Any:
        """How many items pass `filter` (all of them without one)."""
        return self._run(rq.count(name, filter))

    def delete(
        self, name: str, ids: Optional[Sequence[str]] = None, *, filter: Optional[Filter] = None
    ) -> Any:
        """Deletes the items of `ids` that pass `filter`, as one change; returns how many
        were deleted (absent ids are no error)."""
        return self._run(rq.delete(name, ids, filter))

    # -- search -------------------------------------------------------------------------

    def search(
        self,
        name: str,
        vector: Any,
        k: int = 10,
        *,
        ef: Optional[int] = None,
        filter: Optional[Filter] = None,
        include_vectors: bool = False,
        include_documents: bool = False,
        rescore: Optional[bool] = None,
        oversampling: Optional[float] = None,
    ) -> Any:
        """The `k` nearest items passing `filter` (Chroma's `where` syntax), nearest first:
        a list of `SearchResult`. `rescore` and `oversampling` steer a quantized index's
        search (server defaults: rescored, 4 candidates per result)."""
        body = rq.search_body(
            vector,
            k,
            ef,
            filter,
            include_vectors,
            self.base64_vectors,
            include_documents,
            {"rescore": rescore, "oversampling": oversampling},
        )
        return self._run(rq.search(name, body))

    def search_batch(
        self,
        name: str,
        vectors: Any,
        k: int = 10,
        *,
        ef: Optional[int] = None,
        filter: Optional[Filter] = None,
        include_vectors: bool = False,
        include_documents: bool = False,
    ) -> Any:
        """Several searches in one request, one per vector (same k, ef and filter): a list
        of result lists, in order."""
        searches = [
            rq.search_body(
                v, k, ef, filter, include_vectors, self.base64_vectors, include_documents
            )
            for v in _rows(vectors)
        ]
        return self._run(rq.search_batch(name, searches))


def _rows(vectors: Any) -> List[Any]:
    """The vectors of a list or of a numpy 2-d array, one by one."""
    return list(vectors) if hasattr(vectors, "astype") else [v for v in vectors]


def _headers(api_key: Optional[str]) -> Dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _answer(call: Call, response: Any) -> Any:
    """The value of an answer, or the exception of an error answer."""
    if response.status_code in call.accept:
        return call.accept[response.status_code]
    if response.status_code >= 400:
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        raise error_from(response.status_code, body, response.headers.get("retry-after"))
    if response.status_code == 204 or not response.content:
        return call.read(None)
    return call.read(response.json())


def _unreachable(url: str, e: Exception) -> Unavailable:
    return Unavailable(0, "unreachable", f"vectord at {url}: {e}")


class Client(_Api):
    """A blocking client of vectord.

    >>> client = Client("http://127.0.0.1:3215")
    >>> client.create_index("docs", dim=384, fields={"lang": "keyword"})
    >>> client.add("docs", ids, vectors, metadatas)
    >>> client.search("docs", query, k=5, filter={"lang": "en"})
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        api_key: Optional[str] = None,
        timeout: float = 60.0,
        max_busy_wait: float = 60.0,
        base64_vectors: bool = True,
    ):
        self.url = url.rstrip("/")
        self.max_busy_wait = max_busy_wait
        self.base64_vectors = base64_vectors
        self._http = _transport.Transport(self.url, _headers(api_key), timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _run(self, call: Call) -> Any:
        deadline = time.monotonic() + self.max_busy_wait
        while True:
            try:
                response = self._http.request(call.method, call.path, call.body)
                return _answer(call, response)
            except _transport.TransportError as e:
                raise _unreachable(self.url, e) from e
            except Busy as busy:
                wait = busy.retry_after or 1.0
                if time.monotonic() + wait > deadline:
                    raise
                time.sleep(wait)

    def ready(self) -> bool:
        """Whether vectord has loaded its stored indexes (`GET /ready`)."""
        try:
            return self._http.request("GET", "/ready").status_code == 200
        except _transport.TransportError:
            return False

    def add(
        self,
        name: str,
        ids: Sequence[str],
        vectors: Any,
        metadatas: Optional[Sequence[Optional[Metadata]]] = None,
        *,
        documents: Optional[Sequence[Optional[str]]] = None,
        batch_size: int = DEFAULT_BATCH,
    ) -> int:
        """Adds or replaces items (`vectors`: lists or a numpy 2-d array; `documents`: the
        text each vector was made from, None for none), in batches of `batch_size` (each
        batch all-or-nothing); returns the index's count after it."""
        count = 0
        wired = self._wire_vectors(vectors)
        for call in rq.add_calls(name, ids, wired, metadatas, batch_size, documents):
            count = self._run(call)["count"]
        return count

    def iter_items(
        self,
        name: str,
        *,
        filter: Optional[Filter] = None,
        page_size: int = 1000,
        include_vectors: bool = False,
        include_documents: bool = False,
    ) -> Iterator[Item]:
        """Every item passing `filter`, in id order, a page at a time."""
        cursor: Optional[str] = None
        while True:
            page: Page = self.get(
                name,
                filter=filter,
                limit=page_size,
                cursor=cursor,
                include_vectors=include_vectors,
                include_documents=include_documents,
            )
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor


class AsyncClient(_Api):
    """The same as `Client`, for asyncio: every method is awaited."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        api_key: Optional[str] = None,
        timeout: float = 60.0,
        max_busy_wait: float = 60.0,
        base64_vectors: bool = True,
    ):
        self.url = url.rstrip("/")
        self.max_busy_wait = max_busy_wait
        self.base64_vectors = base64_vectors
        self._http = _transport.AsyncTransport(self.url, _headers(api_key), timeout)

    async def aclose(self) -> None:
        await self._http.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def _run(self, call: Call) -> Any:  # type: ignore[override]
        deadline = time.monotonic() + self.max_busy_wait
        while True:
            try:
                response = await self._http.request(call.method, call.path, call.body)
                return _answer(call, response)
            except _transport.TransportError as e:
                raise _unreachable(self.url, e) from e
            except Busy as busy:
                wait = busy.retry_after or 1.0
                if time.monotonic() + wait > deadline:
                    raise
                await asyncio.sleep(wait)

    async def ready(self) -> bool:
        try:
            return (await self._http.request("GET", "/ready")).status_code == 200
        except _transport.TransportError:
            return False

    async def add(
        self,
        name: str,
        ids: Sequence[str],
        vectors: Any,
        metadatas: Optional[Sequence[Optional[Metadata]]] = None,
        *,
        documents: Optional[Sequence[Optional[str]]] = None,
        batch_size: int = DEFAULT_BATCH,
    ) -> int:
        """See `Client.add`."""
        count = 0
        wired = self._wire_vectors(vectors)
        for call in rq.add_calls(name, ids, wired, metadatas, batch_size, documents):
            count = (await self._run(call))["count"]
        return count

    async def iter_items(
        self,
        name: str,
        *,
        filter: Optional[Filter] = None,
        page_size: int = 1000,
        include_vectors: bool = False,
        include_documents: bool = False,
    ) -> AsyncIterator[Item]:
        """See `Client.iter_items`."""
        cursor: Optional[str] = None
        while True:
            page: Page = await self.get(
                name,
                filter=filter,
                limit=page_size,
                cursor=cursor,
                include_vectors=include_vectors,
                include_documents=include_documents,
            )
            for item in page.items:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor


__all__ = [
    "Client",
    "AsyncClient",
    "SearchResult",
    "Item",
    "Page",
    "VectordError",
]
