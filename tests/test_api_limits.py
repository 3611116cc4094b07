"""The HTTP API's bounds over a real socket: integer ranges, digest length, the metrics
port's routes, slow bodies; and that a refused request never reaches the validator."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager

import httpx
import trio

from mev.mempool import Admission
from sequencer_net.node.api import MAX_BATCH_BODY_BYTES, MAX_BODY_BYTES
from sequencer_net.node.genesis import create
from sequencer_net.node.storage import Store
from sequencer_net.node.validator import Settings, Validator
from tests.cluster import encrypted, free_base_port

SLOW_BODY_BOUND_S = 12.0  # the server's body deadline plus slack for a busy machine


@asynccontextmanager
async def one_node(tmp_path: pathlib.Path) -> AsyncIterator[Validator]:
    """A one-validator network serving its API and metrics on free ports."""
    genesis, keys = create(1, chain_id="limits", base_port=free_base_port(1))
    store = Store(tmp_path / "node.db", "limits")
    settings = Settings(api="127.0.0.1:0", metrics="127.0.0.1:0")
    v = Validator(genesis, keys[0], store, settings)
    async with trio.open_nursery() as nursery:
        await nursery.start(v.run)
        yield v
        nursery.cancel_scope.cancel()
    v.close()


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


async def _stall_body(url: str, path: str, body_start: bytes, length: int) -> tuple[bytes, float]:
    """Send headers and the start of a body, then nothing: (what came back, seconds to close)."""
    stream = await trio.open_tcp_stream(*_host_port(url))
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n"
    await stream.send_all(head.encode() + body_start)
    started, received = trio.current_time(), b""
    with trio.move_on_after(SLOW_BODY_BOUND_S):
        while chunk := await stream.receive_some():
            received += chunk
    await stream.aclose()
    return received, trio.current_time() - started


async def test_out_of_range_heights_are_refused_with_a_reason(tmp_path: pathlib.Path) -> None:
    async with one_node(tmp_path) as v, httpx.AsyncClient(base_url=v.api_address) as http:
        for height in ["9223372036854775808", "-1", "0", "1" + "0" * 40, "abc", "1.5"]:
            r = await http.get(f"/v1/batches/{height}")
            assert r.status_code == 400, (height, r.status_code, r.text)
            assert r.json()["error"], height
        in_range = await http.get("/v1/batches/9223372036854775807")
        assert in_range.status_code == 404 and in_range.json()["error"]


async def test_a_digest_must_be_32_bytes_of_hex(tmp_path: pathlib.Path) -> None:
    async with one_node(tmp_path) as v, httpx.AsyncClient(base_url=v.api_address) as http:
        for digest in ["00", "00" * 31, "00" * 33, "zz" * 32, "0" * 63, "00 " * 32]:
            r = await http.get(f"/v1/transactions/{digest}")
            assert r.status_code == 400, (digest, r.status_code, r.text)
            assert r.json()["error"], digest
        r = await http.get(f"/v1/transactions/{'Ab' * 32}")
        assert r.status_code == 200 and r.json()["status"] == "unknown"


async def test_unknown_routes_and_methods_answer_json_errors(tmp_path: pathlib.Path) -> None:
    async with one_node(tmp_path) as v, httpx.AsyncClient(base_url=v.api_address) as http:
        missing = await http.get("/v1/nothing")
        wrong_method = await http.delete("/v1/status")
        assert (missing.status_code, wrong_method.status_code) == (404, 405)
        assert missing.json()["error"] and wrong_method.json()["error"]
        assert "GET" in wrong_method.headers["allow"]


async def test_metrics_port_answers_only_get_metrics(tmp_path: pathlib.Path) -> None:
    async with one_node(tmp_path) as v, httpx.AsyncClient(base_url=v.metrics_address) as http:
        scrape = await http.get("/metrics")
        assert scrape.status_code == 200 and "seqnet_" in scrape.text
        assert scrape.headers["content-type"].startswith("text/plain")
        head = await http.head("/metrics")
        assert head.status_code == 200 and head.content == b""
        for path in ["/", "/metrics/", "/metricsx", "/v1/status", "/metrics/extra"]:
            assert (await http.get(path)).status_code == 404, path
        for method in ["POST", "PUT", "DELETE", "PATCH"]:
            assert (await http.request(method, "/metrics")).status_code == 405, method


async def test_a_stalled_body_is_cut_off(tmp_path: pathlib.Path) -> None:
    async with one_node(tmp_path) as v:
        answers: dict[str, tuple[bytes, float]] = {}

        async def stall(path: str) -> None:
            answers[path] = await _stall_body(v.api_address, path, b"ab", 1000)

        async with trio.open_nursery() as nursery:
            for path in ["/v1/transactions", "/v1/transactions/batch", "/v1/status"]:
                nursery.start_soon(stall, path)
    for path, (received, seconds) in answers.items():
        assert seconds < SLOW_BODY_BOUND_S, (path, seconds, received)
        if path != "/v1/status":  # no handler reads this body: answered at once (405), closed
            assert received.startswith(b"HTTP/1.1 408"), (path, received)


async def test_refusals_never_reach_the_validator(tmp_path: pathlib.Path) -> None:
    async with one_node(tmp_path) as v, httpx.AsyncClient(base_url=v.api_address) as http:
        reached: list[object] = []
        submit_many = v.submit_many

        async def spy(txs: list[bytes], client: Hashable = "client") -> list[Admission]:
            reached.append(txs)
            return await submit_many(txs, client)

        v.submit_many = spy  # type: ignore[method-assign]
        tx = encrypted(v.genesis, "rollup-a", b"never")
        whole = tx.hex().encode()
        too_big = whole + b"0" * (MAX_BODY_BYTES + 1 - len(whole))  # one byte over: all sent
        refused = [
            await http.post("/v1/transactions", content=b"not hex"),
            await http.post("/v1/transactions", content=too_big),
            await http.post("/v1/transactions/batch", content=b"\x00" * (MAX_BATCH_BODY_BYTES + 1)),
        ]
        assert [r.status_code for r in refused] == [400, 413, 413]
        received, _ = await _stall_body(v.api_address, "/v1/transactions", whole[:-2], len(whole))
        assert received.startswith(b"HTTP/1.1 408")
        assert reached == [] and len(v.mempool) == 0
        digest = (await http.post("/v1/transactions", content=whole)).json()["digest"]
        assert len(reached) == 1  # the spy sees what does get through
        assert (await http.get(f"/v1/transactions/{digest}")).json()["status"] != "unknown"
