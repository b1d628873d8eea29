"""What the standard tests leave out: filters, scores, max marginal relevance, retrievers,
from_texts, field indexes, deletes by filter."""

from __future__ import annotations

from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_vectord import VectordVectorStore

from .conftest import API_KEY

EMB = DeterministicFakeEmbedding(size=8)


def test_filters_scores_mmr_and_retriever(server: str, index_name: str):
    texts = [f"text {i}" for i in range(20)]
    metas = [{"year": 2000 + i, "lang": "en" if i % 2 else "de"} for i in range(20)]
    store = VectordVectorStore.from_texts(
        texts,
        EMB,
        metas,
        index_name=index_name,
        url=server,
        api_key=API_KEY,
        fields={"year": "integer", "lang": "keyword"},
    )
    assert store.client.get_index(index_name)["fields"] == {"year": "integer", "lang": "keyword"}
    found = store.similarity_search("text 3", k=3, filter={"year": {"$gte": 2010}})
    assert len(found) == 3 and all(d.metadata["year"] >= 2010 for d in found)
    scored = store.similarity_search_with_score("text 3", k=1)
    assert scored[0][0].page_content == "text 3" and abs(scored[0][1]) < 1e-5
    relevance = store.similarity_search_with_relevance_scores("text 3", k=2)
    assert relevance[0][1] > relevance[1][1] and relevance[0][1] <= 1.0001
    mmr = store.max_marginal_relevance_search("text 3", k=4, fetch_k=10)
    assert len(mmr) == 4 and mmr[0].page_content == "text 3"
    retriever = store.as_retriever(search_kwargs={"k": 2, "filter": {"lang": "de"}})
    docs = retriever.invoke("text 4")
    assert [d.metadata["lang"] for d in docs] == ["de", "de"]
    assert store.delete(filter={"lang": "de"}) is True
    assert store.client.count(index_name) == 10
    assert store.get_by_ids(["nope"]) == []


async def test_async_methods_are_native(server: str, index_name: str):
    store = VectordVectorStore(EMB, index_name, url=server, api_key=API_KEY, distance="l2")
    ids = await store.aadd_documents(
        [Document(page_content=f"doc {i}", metadata={"n": i}, id=f"d{i}") for i in range(10)]
    )
    assert ids == [f"d{i}" for i in range(10)]
    found = await store.asimilarity_search("doc 7", k=1)
    assert found[0].id == "d7" and found[0].metadata == {"n": 7}
    mmr = await store.amax_marginal_relevance_search("doc 7", k=3, fetch_k=6)
    assert mmr[0].id == "d7"
    await store.adelete(["d7"])
    assert await store.aget_by_ids(["d7", "d8"]) == [
        Document(page_content="doc 8", metadata={"n": 8}, id="d8")
    ]


def test_texts_are_documents_not_metadata(server: str, index_name: str):
    # A page of 200 KB: past vectord's metadata limit (64 KiB), well within its document
    # limit (1 MiB); the metadata holds only what the caller gave.
    page = "A long page.\n" + "words " * 33_000
    store = VectordVectorStore(EMB, index_name, url=server, api_key=API_KEY)
    [id_] = store.add_texts([page], metadatas=[{"source": "book"}])
    item = store.client.get_item(index_name, id_)
    assert item is not None and item.metadata == {"source": "book"}
    assert item.document == page
    assert store.get_by_ids([id_])[0].page_content == page
    assert store.similarity_search(page, k=1)[0].page_content == page
    assert store.similarity_search("x", k=1, filter={"source": "book"})[0].metadata == {
        "source": "book"
    }
