"""The asyncio client against a real vectord: the same endpoints, awaited."""

from __future__ import annotations

import asyncio

import pytest

from vectord import AsyncClient, NotFound

from .conftest import API_KEY


async def test_the_async_client_covers_the_same_calls(server: str, index_name: str):
    async with AsyncClient(server, api_key=API_KEY) as client:
        assert await client.ready()
        await client.create_index(index_name, 2, "l2", fields={"n": "integer"})
        ids = [f"i{j}" for j in range(50)]
        vectors = [[float(j), 1.0] for j in range(50)]
        metas = [{"n": j} for j in range(50)]
        docs = [f"text {j}" if j % 2 else None for j in range(50)]
        added = await client.add(index_name, ids, vectors, metas, documents=docs, batch_size=20)
        assert added == 50
        hits = await client.search(index_name, [3.0, 1.0], k=2, include_documents=True)
        assert [(h.id, h.document) for h in hits] == [("i3", "text 3"), ("i2", None)]
        # concurrent searches share one connection pool
        results = await asyncio.gather(
            *(client.search(index_name, [float(j), 1.0], k=1) for j in range(10))
        )
        assert [r[0].id for r in results] == [f"i{j}" for j in range(10)]
        hits = await client.search(index_name, [0.0, 1.0], k=3, filter={"n": {"$gte": 40}})
        assert [h.id for h in hits] == ["i40", "i41", "i42"]
        assert await client.count(index_name, {"n": {"$lt": 10}}) == 10
        got = [item.id async for item in client.iter_items(index_name, page_size=7)]
        assert sorted(got) == sorted(ids)
        assert await client.delete(index_name, ids=["i1", "i2", "nope"]) == 2
        assert (await client.get_item(index_name, "i1")) is None
        await client.delete_index(index_name)
        with pytest.raises(NotFound):
            await client.get_index(index_name)


async def test_a_cancelled_request_leaves_no_answer_behind(server: str, index_name: str):
    async with AsyncClient(server, api_key=API_KEY) as client:
        await client.create_index(index_name, 2, "l2")
        await client.add(index_name, ["a", "b"], [[1.0, 0.0], [0.0, 1.0]])
        for _ in range(20):
            task = asyncio.ensure_future(client.search(index_name, [1.0, 0.0], k=1))
            await asyncio.sleep(0)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            # the next answer on the pool is this request's own, never the cancelled one's
            hits = await client.search(index_name, [0.0, 1.0], k=1)
            assert [h.id for h in hits] == ["b"]
