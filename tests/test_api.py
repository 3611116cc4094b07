"""The HTTP API over a real socket: contract, refusals with reasons, never a server error."""

from __future__ import annotations

import pathlib

import cbor2
import httpx
import trio

from sequencer_net.node.genesis import create
from sequencer_net.node.storage import Store
from sequencer_net.node.validator import Settings, Validator
from tests.cluster import encrypted, free_base_port


async def test_submit_status_batches_and_refusals(tmp_path: pathlib.Path) -> None:
    base = free_base_port(4)
    genesis, keys = create(4, chain_id="api-test", base_port=base)
    validators = [
        Validator(
            genesis,
            k,
            Store(tmp_path / f"node-{k.index}.db", "api-test"),
            Settings(base_timeout_ms=500, heartbeat_ms=100, api="127.0.0.1:0", new_node=True),
        )
        for k in keys
    ]
    async with trio.open_nursery() as nursery:
        for v in validators:
            await nursery.start(v.run)
        url = validators[0].api_address
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            spec = (await http.get("/openapi.json")).json()
            assert {"/v1/transactions", "/v1/transactions/batch", "/v1/status"} <= set(
                spec["paths"]
            )
            tx = encrypted(genesis, "rollup-a", b"pay 3")
            first = await http.post("/v1/transactions", content=tx.hex())
            assert first.status_code == 202, first.text
            digest = first.json()["digest"]
            again = await http.post(
                "/v1/transactions", content=tx, headers={"content-type": "application/cbor"}
            )
            assert again.status_code == 409 and again.json()["error"] == "duplicate"
            refusals = [
                await http.post("/v1/transactions", content=b"not hex at all"),
                await http.post("/v1/transactions", content="a1" * 200),
                await http.post("/v1/transactions", content=b"0" * 300_000),
                await http.post("/v1/transactions/batch", content=b"\xff\x00"),
                await http.post("/v1/transactions/batch", content=cbor2.dumps([1, 2])),
                await http.get("/v1/transactions/zz"),
                await http.get("/v1/batches/99999"),
            ]
            assert [r.status_code for r in refusals] == [400, 400, 413, 400, 400, 400, 404]
            assert all("error" in r.json() for r in refusals)
            wrong_ns = encrypted(genesis, "rollup-zzz", b"x")
            batch = await http.post(
                "/v1/transactions/batch",
                content=cbor2.dumps([wrong_ns, b"junk"]),
                headers={"content-type": "application/cbor"},
            )
            assert [r["status"] for r in batch.json()["results"]] == [
                "unknown-namespace",
                "malformed",
            ]

            async def record() -> dict:  # type: ignore[type-arg]
                return (await http.get(f"/v1/transactions/{digest}")).json()

            with trio.fail_after(30):
                while (found := await record())["status"] != "decrypted":  # noqa: ASYNC110
                    await trio.sleep(0.05)  # polling the API is what a client does
            assert bytes.fromhex(found["plaintext"]) == b"pay 3"
            height = found["height"]
            only_a = (await http.get(f"/v1/batches/{height}?namespace=rollup-a")).json()
            assert [t["digest"] for t in only_a["transactions"]] == [digest]
            only_b = (await http.get(f"/v1/batches/{height}?namespace=rollup-b")).json()
            assert only_b["transactions"] == []
            status = (await http.get("/v1/status")).json()
            assert status["height"] >= height and status["peers"] == 3
        nursery.cancel_scope.cancel()
