"""What a rollup reads from a node: certified namespace batches, one at a time or as a stream.

Every answer is a :class:`~delivery.batch.NamespaceBatch`: the batch
certificate of a height, the namespace's transactions there and the proof
that they are all of them (or that there are none). A rollup verifies it from
the genesis alone, so it never has to trust the node it reads from.

- ``GET /v1/namespaces/{ns}/batches/{h}``: one height; ``Accept:
  application/cbor`` gets the canonical bytes, otherwise JSON that also
  carries them (``cbor``, hex).
- ``WebSocket /v1/namespaces/{ns}/stream?from=H``: every height from ``H`` in
  order, one binary message each (heights where the namespace is empty
  included, with their proof of absence), first from storage and then live,
  with no gap and no duplicate. Memory per stream is one message: the next
  height is read only once the previous one was sent, and a consumer that does
  not take a message within ``SEND_TIMEOUT_S`` is closed with code 1008 and the
  reason ``slow consumer`` rather than buffered for.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import trio
from fastapi import FastAPI, Path, Query, Request, WebSocket
from fastapi.responses import JSONResponse
from starlette.responses import Response
from starlette.websockets import WebSocketDisconnect

from delivery.batch import NamespaceBatch, build_namespace_batch
from delivery.header import BatchCertificate, batch_hash
from delivery.nmt import Leaf
from sequencer_net.base import codec
from sequencer_net.node.batches import leaves_of

if TYPE_CHECKING:
    from sequencer_net.node.validator import Validator

MAX_HEIGHT = 2**63 - 1
MAX_STREAMS = 64  # concurrent WebSocket streams per node
SEND_TIMEOUT_S = 10.0  # a consumer that takes longer for one message is closed
CACHED_HEIGHTS = 64  # recent heights' trees, shared by every reader
CACHED_BATCHES = 256  # recent (height, namespace) batches, proved and encoded
POLICY_VIOLATION = 1008  # WebSocket close codes (RFC 6455)
TRY_AGAIN_LATER = 1013
CBOR = "application/cbor"


class CertifiedBatches:
    """Namespace batches of certified heights, built off the event loop and cached.

    Every subscriber of a namespace reads the same recent heights, so each
    (height, namespace) batch is proved and encoded once, in a worker thread
    (a proof over a large batch takes a good fraction of a second), and the
    tree of a height (its leaves in tree order) is shared by its namespaces.
    """

    def __init__(self, validator: Validator) -> None:
        self._v = validator
        self._trees: OrderedDict[int, tuple[BatchCertificate, list[Leaf]]] = OrderedDict()
        self._served: OrderedDict[tuple[int, str], tuple[NamespaceBatch, bytes]] = OrderedDict()
        self._lock = threading.Lock()  # the caches are shared by worker threads

    async def get(self, height: int, namespace: str) -> tuple[NamespaceBatch, bytes] | None:
        """The namespace's batch at ``height`` and its bytes; None until it is certified."""
        with self._lock:
            found = self._served.get((height, namespace))
        if found is None:
            found = await trio.to_thread.run_sync(self._build, height, namespace)
        return found

    def _build(self, height: int, namespace: str) -> tuple[NamespaceBatch, bytes] | None:
        tree = self._tree(height)
        if tree is None:
            return None
        batch = build_namespace_batch(tree[0], tree[1], namespace)
        found = batch, codec.encode(batch)
        with self._lock:
            _remember(self._served, (height, namespace), found, CACHED_BATCHES)
        return found

    def _tree(self, height: int) -> tuple[BatchCertificate, list[Leaf]] | None:
        with self._lock:
            tree = self._trees.get(height)
        if tree is not None:
            return tree
        reader = self._v.reader
        cert = reader.batch_certificate(height)
        batch = reader.batch(height) if cert is not None else None
        if cert is None or batch is None:
            return None
        tree = cert, leaves_of(batch)
        with self._lock:
            _remember(self._trees, height, tree, CACHED_HEIGHTS)
        return tree


def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any, size: int) -> None:
    cache[key] = value
    while len(cache) > size:
        cache.popitem(last=False)


def add_rollup_routes(app: FastAPI, v: Validator) -> None:
    """Register the rollup endpoints on the node's API."""
    batches = CertifiedBatches(v)
    streams = trio.Semaphore(MAX_STREAMS)

    @app.get(
        "/v1/namespaces/{namespace}/batches/{height}",
        summary="A rollup's certified batch at a height, with its proof (verifiable from genesis)",
        responses={
            200: {"content": {CBOR: {}}, "description": "JSON, or CBOR with Accept: " + CBOR},
            404: {"description": "namespace not registered, or height not certified yet"},
        },
    )
    async def namespace_batch(
        request: Request,
        namespace: str = Path(min_length=1, max_length=64),
        height: int = Path(ge=1, le=MAX_HEIGHT),
    ) -> Any:
        if namespace not in v.genesis.namespaces:
            return _error(404, f"namespace {namespace!r} is not registered")
        found = await batches.get(height, namespace)
        if found is None:
            return _error(404, "not certified yet")
        batch, data = found
        if CBOR in request.headers.get("accept", ""):
            return Response(data, media_type=CBOR)
        return _as_json(batch, data)

    @app.websocket("/v1/namespaces/{namespace}/stream")
    async def namespace_stream(
        ws: WebSocket, namespace: str, start: int = Query(default=1, alias="from")
    ) -> None:
        await ws.accept()
        if namespace not in v.genesis.namespaces:
            return await ws.close(POLICY_VIOLATION, f"namespace {namespace!r} is not registered")
        if not 1 <= start <= MAX_HEIGHT:
            return await ws.close(POLICY_VIOLATION, "from must be a height >= 1")
        try:
            streams.acquire_nowait()
        except trio.WouldBlock:
            return await ws.close(TRY_AGAIN_LATER, f"at most {MAX_STREAMS} streams")
        try:
            await _stream(ws, batches, v, namespace, start)
        except WebSocketDisconnect:
            pass  # the consumer left: nothing to clean up beyond the slot
        finally:
            streams.release()


async def _stream(
    ws: WebSocket, batches: CertifiedBatches, v: Validator, namespace: str, height: int
) -> None:
    """Send every height from ``height`` on, each once certified, until the consumer leaves."""
    while True:
        await v.wait_certified(height)
        found = await batches.get(height, namespace)
        if found is None:  # certified but not readable yet (the writer's commit): next tick
            await trio.sleep(0.01)
            continue
        with trio.move_on_after(SEND_TIMEOUT_S) as timer:
            await ws.send_bytes(found[1])
        if timer.cancelled_caught:
            await ws.close(POLICY_VIOLATION, "slow consumer")
            return
        height += 1


def _as_json(found: NamespaceBatch, data: bytes) -> dict[str, Any]:
    header = found.certificate.header
    return {
        "height": header.height,
        "namespace": found.namespace,
        "batch_hash": batch_hash(header).hex(),
        "block_hash": header.block_hash.hex(),
        "signers": [s for s, _ in found.certificate.signatures],
        "transactions": [
            {
                "digest": leaf.digest.hex(),
                "plaintext": None if leaf.plaintext is None else leaf.plaintext.hex(),
            }
            for leaf in found.leaves
        ],
        "cbor": data.hex(),
    }


def _error(status: int, reason: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": reason})
