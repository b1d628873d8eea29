"""vectord: the Python client of vectord, the vector-search service.

    from vectord import Client
    client = Client("http://127.0.0.1:3215")
    client.create_index("docs", dim=3, distance="cosine", fields={"lang": "keyword"})
    client.add("docs", ["a", "b"], [[1, 0, 0], [0, 1, 0]], [{"lang": "en"}, {"lang": "de"}])
    client.search("docs", [1, 0.1, 0], k=5, filter={"lang": {"$in": ["en", "fr"]}})

`AsyncClient` has the same methods, awaited. Errors are `VectordError` subclasses carrying
the server's status, code and message.
"""

from ._client import DEFAULT_URL, AsyncClient, Client
from ._errors import (
    Busy,
    Conflict,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    Unavailable,
    VectordError,
)
from ._requests import Item, Page, SearchResult

__version__ = "0.3.0.dev0"

__all__ = [
    "DEFAULT_URL",
    "AsyncClient",
    "Client",
    "Busy",
    "Conflict",
    "InvalidRequest",
    "NotFound",
    "PayloadTooLarge",
    "Unauthorized",
    "Unavailable",
    "VectordError",
    "Item",
    "Page",
    "SearchResult",
]
