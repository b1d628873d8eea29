"""The blocking client against a real vectord: every endpoint, errors, escaping, numpy."""

from __future__ import annotations

import numpy as np
import pytest

from vectord import Client, Conflict, InvalidRequest, NotFound, Unauthorized, Unavailable

from .conftest import API_KEY


@pytest.fixture(params=[True, False], ids=["base64", "numbers"])
def client(server: str, request):
    """A client sending vectors as base64 (the default), and one sending JSON numbers."""
    with Client(server, api_key=API_KEY, base64_vectors=request.param) as c:
        yield c


def test_indexes_are_created_listed_described_and_deleted(client: Client, index_name: str):
    info = client.create_index(index_name, 3, "l2", m=8, fields={"lang": "keyword"})
    assert info["name"] == index_name and info["m"] == 8
    assert info["fields"] == {"lang": "keyword"}
    assert index_name in [i["name"] for i in client.list_indexes()]
    assert client.declare_fields(index_name, {"year": "integer"}) == {
        "lang": "keyword",
        "year": "integer",
    }
    assert client.get_index(index_name)["fields"]["year"] == "integer"
    with pytest.raises(Conflict) as e:
        client.create_index(index_name, 3)
    assert e.value.code == "index_exists"
    assert client.flush(index_name) is False  # ephemeral: nothing is stored
    client.delete_index(index_name)
    with pytest.raises(NotFound):
        client.get_index(index_name)


def test_items_round_trip_and_search_with_filters(client: Client, index_name: str):
    client.create_index(index_name, 3, "cosine", fields={"year": "integer"})
    ids = ["a", "b/c", "d e", "..x", "ü"]
    vectors = np.array(
        [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1]], dtype=np.float32
    )
    metas = [{"year": 2020 + i, "lang": "en" if i % 2 else "de"} for i in range(5)]
    assert client.add(index_name, ids, vectors, metas, batch_size=2) == 5
    for id_ in ids:
        item = client.get_item(index_name, id_)
        assert item is not None and item.id == id_
    assert client.get_item(index_name, "nope") is None
    hits = client.search(index_name, [1, 0.1, 0], k=2, filter={"year": {"$gte": 2022}})
    assert [h.id for h in hits] == ["..x", "ü"] or [h.id for h in hits] == ["ü", "..x"]
    assert all(h.metadata["year"] >= 2022 for h in hits)
    hits = client.search(index_name, np.array([1.0, 0, 0]), k=1, include_vectors=True)
    assert hits[0].id == "a" and hits[0].vector == [1.0, 0.0, 0.0]
    item = client.get_item(index_name, "d e")
    assert item is not None and item.vector == [0.0, 0.0, 1.0]
    batch = client.search_batch(index_name, [[1, 0, 0], [0, 1, 0]], k=1)
    assert [[h.id for h in rows] for rows in batch] == [["a"], ["b/c"]]
    assert client.count(index_name) == 5
    assert client.count(index_name, {"lang": "en"}) == 2
    page = client.get(index_name, ["ü", "nope", "a"], include_vectors=True)
    assert [i.id for i in page.items] == ["ü", "a"]
    assert page.items[1].vector == [1.0, 0.0, 0.0]
    assert sorted(i.id for i in client.iter_items(index_name, page_size=2)) == sorted(ids)
    assert client.delete(index_name, filter={"lang": "en"}) == 2
    assert client.delete_item(index_name, "a") is True
    assert client.delete_item(index_name, "a") is False
    assert client.count(index_name) == 2


def test_documents_are_stored_and_returned_on_request(client: Client, index_name: str):
    client.create_index(index_name, 2, "l2")
    text = "a chunk\nwith \"quotes\", é and " + "long " * 20_000  # ~100 KB: not metadata
    ids = ["with", "without", "empty"]
    client.add(index_name, ids, [[1, 0], [0, 1], [1, 1]], documents=[text, None, ""])
    item = client.get_item(index_name, "with")
    assert item is not None and item.document == text
    assert client.get_item(index_name, "without").document is None  # type: ignore[union-attr]
    page = client.get(index_name, ids, include_documents=True, include_metadata=False)
    assert [i.document for i in page.items] == [text, None, ""]
    assert client.get(index_name, ids).items[0].document is None  # not asked for
    hits = client.search(index_name, [1, 0], k=1, include_documents=True)
    assert hits[0].id == "with" and hits[0].document == text
    assert client.search(index_name, [1, 0], k=1)[0].document is None
    batch = client.search_batch(index_name, [[1, 1]], k=1, include_documents=True)
    assert batch[0][0].document == ""
    docs = {i.id: i.document for i in client.iter_items(index_name, include_documents=True)}
    assert docs == {"with": text, "without": None, "empty": ""}
    with pytest.raises(ValueError):
        client.add(index_name, ["x"], [[1, 0]], documents=["a", "b"])
    with pytest.raises(InvalidRequest) as e:
        client.add(index_name, ["big"], [[1, 0]], documents=["x" * ((1 << 20) + 1)])
    assert e.value.code == "document_too_large" and "items[0].document" in e.value.message


def test_an_int8_index_is_created_and_searched(client: Client, index_name: str):
    info = client.create_index(index_name, 4, "l2", quantization={"type": "int8"})
    assert info["quantization"] == {"type": "int8", "quantile": 0.99}
    vectors = np.random.default_rng(1).random((300, 4), dtype=np.float32)
    client.add(index_name, [str(i) for i in range(300)], vectors)
    assert client.search(index_name, vectors[7], k=1)[0].id == "7"
    hits = client.search(index_name, vectors[7], k=3, rescore=False, oversampling=2)
    assert hits[0].id == "7"
    with pytest.raises(InvalidRequest) as e:
        client.search(index_name, vectors[7], oversampling=0.5)
    assert e.value.code == "invalid_oversampling"


def test_an_on_disk_index_keeps_its_setting_and_answers(client: Client, index_name: str):
    info = client.create_index(
        index_name, 4, "l2", quantization={"type": "int8"}, on_disk=True
    )
    assert info["on_disk"] is True and info["disk_bytes"] == 0
    assert info["rescoring"] == {"rescore": True, "oversampling": 4.0}
    vectors = np.random.default_rng(2).random((200, 4), dtype=np.float32)
    client.add(index_name, [str(i) for i in range(200)], vectors)
    assert client.search(index_name, vectors[5], k=1)[0].id == "5"
    assert client.get_index(index_name)["on_disk"] is True


def test_errors_carry_the_server_code_and_message(client: Client, index_name: str, server: str):
    client.create_index(index_name, 2)
    with pytest.raises(InvalidRequest) as e:
        client.add(index_name, ["x"], [[1, 2, 3]])
    assert e.value.code == "wrong_dimension" and "items[0].vector" in e.value.message
    with pytest.raises(InvalidRequest) as e:
        client.search(index_name, [1, 0], filter={"year": {"$bad": 1}})
    assert e.value.code == "invalid_filter"
    with pytest.raises(InvalidRequest) as e:
        client.add(index_name, [".."], [[1, 0]])
    assert e.value.code == "invalid_id"
    with pytest.raises(ValueError):
        client.add(index_name, ["a", "b"], [[1, 0]])
    with Client(server, api_key="wrong") as bad:
        with pytest.raises(Unauthorized):
            bad.list_indexes()
    with Client("http://127.0.0.1:9", timeout=1) as gone:
        with pytest.raises(Unavailable) as e:
            gone.list_indexes()
        assert e.value.code == "unreachable"
        assert gone.ready() is False
