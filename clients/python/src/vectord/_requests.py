"""What each call of the client sends and how its answer is read, shared by `Client` and
`AsyncClient` (which only differ in how they send): a call is a `Call` (method, path,
body) and a function that turns the decoded answer into what the caller gets."""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Union
from urllib.parse import quote

Vector = Sequence[float]
Metadata = Mapping[str, Any]
Filter = Mapping[str, Any]


@dataclass
class SearchResult:
    """One search result: the item's id, its distance to the query (cosine: 1 - cos, l2:
    Euclidean, ip: 1 - dot), its metadata, and its vector and document when asked for."""

    id: str
    distance: float
    metadata: Dict[str, Any] = field(default_factory=dict)
    vector: Optional[List[float]] = None
    document: Optional[str] = None


@dataclass
class Item:
    """A stored item: its vector as stored (unit length under cosine), metadata and
    document (each when asked for; `document` None also when the item has none)."""

    id: str
    vector: Optional[List[float]] = None
    metadata: Optional[Dict[str, Any]] = None
    document: Optional[str] = None


@dataclass
class Page:
    """A page of items in id order, and where the next one starts (None on the last)."""

    items: List[Item]
    next_cursor: Optional[str]


@dataclass
class Call:
    method: str
    path: str
    body: Optional[Any] = None
    read: Callable[[Any], Any] = lambda answer: answer
    #: Status codes that are answers, not errors (e.g. 404 for "no such item": None).
    accept: Mapping[int, Any] = field(default_factory=dict)


def escape(part: str) -> str:
    """One path segment, percent-escaped so that every id round-trips: dots too, which
    HTTP clients would otherwise read as "this" and "parent" segments."""
    return quote(part, safe="").replace(".", "%2E")


def index_path(name: str, *rest: str) -> str:
    return "/".join(["/vectors/index", escape(name), *rest])


def to_base64(v: Any) -> str:
    """The base64 of a vector's little-endian f32 values: what vectord reads ~10x faster
    than decimal numbers (and Python writes much faster)."""
    tobytes = getattr(v, "astype", None)
    if callable(tobytes):  # numpy
        return base64.b64encode(v.astype("<f4").tobytes()).decode("ascii")
    values = as_vector(v)
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode("ascii")


def from_base64(text: str) -> List[float]:
    raw = base64.b64decode(text)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def vector_out(v: Any) -> Optional[List[float]]:
    """A vector of an answer, whichever way it was written."""
    if v is None:
        return None
    return from_base64(v) if isinstance(v, str) else v


def wire(v: Any, base64_vectors: bool) -> Any:
    """A vector as sent: base64, or JSON numbers."""
    return to_base64(v) if base64_vectors else as_vector(v)


def as_vector(v: Any) -> List[float]:
    """A vector as JSON numbers: lists, tuples and numpy arrays alike."""
    tolist = getattr(v, "tolist", None)
    if callable(tolist):
        v = tolist()
    return [float(x) for x in v]


def as_vectors(vectors: Any) -> List[List[float]]:
    tolist = getattr(vectors, "tolist", None)
    if callable(tolist):  # a numpy 2-d array: one conversion for all of it
        return [[float(x) for x in row] for row in tolist()]
    return [as_vector(v) for v in vectors]


def _results(rows: Iterable[Mapping[str, Any]]) -> List[SearchResult]:
    # Positional: this runs for every result of every search.
    return [
        SearchResult(
            r["id"],
            r["distance"],
            r.get("metadata") or {},
            vector_out(r["vector"]) if "vector" in r else None,
            r.get("document"),
        )
        for r in rows
    ]


def _item(row: Mapping[str, Any]) -> Item:
    return Item(
        id=row["id"],
        vector=vector_out(row.get("vector")),
        metadata=row.get("metadata"),
        document=row.get("document"),
    )


def _without_none(**fields: Any) -> Dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def create_index(
    name: str,
    dim: int,
    distance: str,
    m: Optional[int],
    ef_construction: Optional[int],
    ef_search: Optional[int],
    fields: Optional[Mapping[str, str]],
    quantization: Optional[Mapping[str, Any]] = None,
    on_disk: bool = False,
) -> Call:
    body = _without_none(
        name=name,
        dim=dim,
        distance=distance,
        m=m,
        ef_construction=ef_construction,
        ef_search=ef_search,
        fields=dict(fields) if fields else None,
        quantization=dict(quantization) if quantization else None,
        on_disk=True if on_disk else None,
    )
    return Call("POST", "/vectors/index", body)


def list_indexes() -> Call:
    return Call("GET", "/vectors/index", read=lambda a: a["indexes"])


def get_index(name: str) -> Call:
    return Call("GET", index_path(name))


def delete_index(name: str) -> Call:
    return Call("DELETE", index_path(name), read=lambda a: None)


def flush(name: str) -> Call:
    return Call("POST", index_path(name, "flush"), {}, read=lambda a: bool(a["persisted"]))


def declare_fields(name: str, fields: Mapping[str, str]) -> Call:
    return Call(
        "POST", index_path(name, "fields"), {"fields": dict(fields)}, read=lambda a: a["fields"]
    )


def add_batch(
    name: str,
    ids: Sequence[str],
    vectors: Sequence[Any],
    metadatas: Optional[Sequence[Optional[Metadata]]],
    documents: Optional[Sequence[Optional[str]]] = None,
) -> Call:
    items = []
    for i, (id_, vector) in enumerate(zip(ids, vectors)):
        item: Dict[str, Any] = {"id": id_, "vector": vector}
        if metadatas is not None and metadatas[i]:
            item["metadata"] = dict(metadatas[i])  # type: ignore[arg-type]
        if documents is not None and documents[i] is not None:
            item["document"] = documents[i]
        items.append(item)
    return Call("POST", index_path(name, "add"), {"items": items})


def get_item(name: str, id: str) -> Call:
    return Call(
        "GET",
        index_path(name, "items", escape(id)),
        read=lambda a: Item(
            id=a["id"],
            vector=a["vector"],
            metadata=a.get("metadata") or {},
            document=a.get("document"),
        ),
        accept={404: None},
    )


def delete_item(name: str, id: str) -> Call:
    return Call(
        "DELETE",
        index_path(name, "items", escape(id)),
        read=lambda a: True,
        accept={404: False},
    )


def include_list(metadata: bool, vectors: bool, documents: bool = False) -> List[str]:
    wanted = (("metadata", metadata), ("vector", vectors), ("document", documents))
    return [what for what, want in wanted if want]


def get(
    name: str,
    ids: Optional[Sequence[str]],
    filter: Optional[Filter],
    limit: Optional[int],
    cursor: Optional[str],
    include: List[str],
) -> Call:
    body = _without_none(
        ids=list(ids) if ids is not None else None,
        filter=filter,
        limit=limit,
        cursor=cursor,
        include=include,
        vector_encoding="base64" if "vector" in include else None,
    )
    return Call(
        "POST",
        index_path(name, "get"),
        body,
        read=lambda a: Page(items=[_item(r) for r in a["items"]], next_cursor=a.get("next_cursor")),
    )


def count(name: str, filter: Optional[Filter]) -> Call:
    return Call(
        "POST", index_path(name, "count"), _without_none(filter=filter), read=lambda a: a["count"]
    )


def delete(name: str, ids: Optional[Sequence[str]], filter: Optional[Filter]) -> Call:
    body = _without_none(ids=list(ids) if ids is not None else None, filter=filter)
    return Call("POST", index_path(name, "delete"), body, read=lambda a: a["deleted"])


def search_body(
    vector: Any,
    k: int,
    ef: Optional[int],
    filter: Optional[Filter],
    vectors: bool,
    base64_vectors: bool = True,
    documents: bool = False,
    options: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    """A search's body; `options` adds the fields of a quantized index's search
    (`rescore`, `oversampling`; None values left out)."""
    include = include_list(True, vectors, documents)
    return _without_none(
        vector=wire(vector, base64_vectors),
        k=k,
        ef=ef,
        filter=filter,
        include=include if len(include) > 1 else None,
        vector_encoding="base64" if vectors and base64_vectors else None,
        **dict(options or {}),
    )


def search(name: str, body: Dict[str, Any]) -> Call:
    """One search, its body made by `search_body`."""
    return Call("POST", index_path(name, "search"), body, read=lambda a: _results(a["results"]))


def search_batch(name: str, searches: List[Dict[str, Any]]) -> Call:
    return Call(
        "POST",
        index_path(name, "search", "batch"),
        {"searches": searches},
        read=lambda a: [_results(rows) for rows in a["results"]],
    )


def chunks(n: int, size: int) -> Iterable[range]:
    for start in range(0, n, size):
        yield range(start, min(start + size, n))


def add_calls(
    name: str,
    ids: Sequence[str],
    vectors: List[Any],
    metadatas: Optional[Sequence[Optional[Metadata]]],
    batch_size: int,
    documents: Optional[Sequence[Optional[str]]] = None,
) -> Iterable[Call]:
    """The `add` requests of a batch of items, `batch_size` items each (`vectors` as
    they go on the wire)."""
    lengths = [("ids", len(ids)), ("vectors", len(vectors))]
    lengths += [("metadatas", len(metadatas))] if metadatas is not None else []
    lengths += [("documents", len(documents))] if documents is not None else []
    if any(n != len(ids) for _, n in lengths):
        raise ValueError(
            ", ".join(f"{n} {what}" for what, n in lengths) + ": give one of each per item"
        )
    for part in chunks(len(ids), batch_size):
        metas = [metadatas[i] for i in part] if metadatas is not None else None
        docs = [documents[i] for i in part] if documents is not None else None
        yield add_batch(name, [ids[i] for i in part], [vectors[i] for i in part], metas, docs)


Vectors = Union[Sequence[Vector], Any]
