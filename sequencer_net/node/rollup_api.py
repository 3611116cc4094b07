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
  reason ``slow consumer`` rather than buffered for. At most ``MAX_STREAMS``
  at once; one more is closed with 1013 and counted in
  ``seqnet_messages_ignored_total{protocol="rollup-stream",reason="busy"}``. A
  stream's slot is given back as soon as its consumer leaves.

  hypercorn shields its socket writes from cancellation, so a send cannot be
  cut off at ``SEND_TIMEOUT_S``: the stream is closed as slow once the late
  message is finally taken. A consumer that never reads again keeps its slot
  (and its one message) until its connection drops.
- ``GET /v1/transactions/{digest}/receipt``: a transaction's
  :class:`~delivery.receipt.Receipt` (its committed block, position and commit
  proof; with the plaintext's inclusion proof once the batch is certified),
  CBOR or JSON like the batches; 404 until the commit proof is stored.
"""

from __future__ import annotations

import string
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import trio
from fastapi import FastAPI, Path, Query, Request, WebSocket
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.responses import Response
from starlette.websockets import WebSocketDisconnect

from delivery.batch import NamespaceBatch
from delivery.header import batch_hash
from delivery.nmt import prove_leaf
from delivery.receipt import MAX_COMMIT_CHAIN, Inclusion, Receipt, commit_proof
from ordering.events import Commit
from ordering.messages import Block
from sequencer_net.base import codec
from sequencer_net.node.batches import CertifiedBatches

if TYPE_CHECKING:
    from sequencer_net.node.validator import Validator

MAX_HEIGHT = 2**63 - 1
MAX_STREAMS = 64  # concurrent WebSocket streams per node
SEND_TIMEOUT_S = 10.0  # a consumer that takes longer for one message is closed
POLICY_VIOLATION = 1008  # WebSocket close codes (RFC 6455)
TRY_AGAIN_LATER = 1013
STREAM = "rollup-stream"  # the metrics label of refused streams
CBOR = "application/cbor"
HEX_DIGEST = "^[0-9a-fA-F]{64}$"
CACHED_RECEIPT_BYTES = 32 * 1024 * 1024  # encoded final receipts kept (decoded copy: ~as much)
NOT_COMMITTED = "not committed yet"


class Receipts:
    """Transactions' receipts, built from the reader store in a worker thread.

    A receipt exists once the transaction's block and the blocks of its commit
    proof are stored (usually the block at the next height). It gains the
    plaintext's inclusion proof once the height's batch is certified; from then
    on it never changes and is cached, up to ``CACHED_RECEIPT_BYTES`` in all
    (a receipt carries whole blocks: counting entries would not bound memory).
    """

    def __init__(self, validator: Validator, batches: CertifiedBatches) -> None:
        self._v, self._batches = validator, batches
        self._final: OrderedDict[bytes, tuple[Receipt, bytes]] = OrderedDict()
        self._cached_bytes = 0
        self._lock = threading.Lock()

    async def get(self, digest: bytes) -> tuple[Receipt, bytes] | str:
        """The receipt of ``digest`` and its bytes, or why there is none (yet)."""
        with self._lock:
            found = self._final.get(digest)
        if found is not None:
            return found
        return await trio.to_thread.run_sync(self._build, digest)

    def _build(self, digest: bytes) -> tuple[Receipt, bytes] | str:
        reader = self._v.reader
        where = reader.locate(digest)
        if where is None:
            return NOT_COMMITTED
        height, position = where
        commits = reader.commits(height, MAX_COMMIT_CHAIN + 1)
        if not commits or commits[0].block.height != height:
            return NOT_COMMITTED
        known = [(c.block, c.certificate) for c in commits]
        witness = reader.commit_witness()  # the child that made the tip final, not committed
        if witness is not None and _extends(witness[0], commits[-1]):
            known.append(witness)
        proof = commit_proof(known)
        if proof is None:
            if len(commits) <= MAX_COMMIT_CHAIN:
                return NOT_COMMITTED  # the proof needs blocks not committed yet
            return f"no commit proof within {MAX_COMMIT_CHAIN} blocks"
        certificate, chain, commit_certificate = proof
        inclusion = self._inclusion(height, digest)
        receipt = Receipt(
            commits[0].block, certificate, position, chain, commit_certificate, inclusion
        )
        found = receipt, codec.encode(receipt)
        if inclusion is not None:
            self._remember(digest, found)
        return found

    def _remember(self, digest: bytes, found: tuple[Receipt, bytes]) -> None:
        with self._lock:
            if digest in self._final:
                return
            self._final[digest] = found
            self._cached_bytes += len(found[1])
            while self._cached_bytes > CACHED_RECEIPT_BYTES:
                _, (_, data) = self._final.popitem(last=False)
                self._cached_bytes -= len(data)

    def _inclusion(self, height: int, digest: bytes) -> Inclusion | None:
        tree = self._batches.tree(height)  # shared with the namespace batches of that height
        if tree is None:
            return None
        cert, leaves = tree
        index = next((i for i, leaf in enumerate(leaves) if leaf.digest == digest), None)
        if index is None:
            return None
        return Inclusion(cert, leaves[index], prove_leaf(leaves, index))


def _extends(block: Block, commit: Commit) -> bool:
    """Whether ``block`` is the child of a committed block (so it may end a commit proof)."""
    parent = block.parent_qc
    return block.height == commit.block.height + 1 and parent.block_hash == commit.block_hash


def add_rollup_routes(app: FastAPI, v: Validator) -> None:
    """Register the rollup endpoints on the node's API."""
    batches = v.batches
    receipts = Receipts(v, batches)
    streams = trio.Semaphore(MAX_STREAMS)

    @app.get(
        "/v1/namespaces/{namespace}/batches/{height}",
        summary="A rollup's certified batch at a height, with its proof (verifiable from genesis)",
        response_model=NamespaceBatchView,
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

    @app.get(
        "/v1/transactions/{digest}/receipt",
        summary="A transaction's receipt: its committed block, position and commit proof, with "
        "the plaintext's inclusion proof once certified (verifiable from genesis)",
        response_model=ReceiptView,
        responses={
            200: {"content": {CBOR: {}}, "description": "JSON, or CBOR with Accept: " + CBOR},
            400: {"description": "the digest is not 32 bytes of hex"},
            404: {"description": "not committed yet (or its commit proof is not stored yet)"},
        },
    )
    async def transaction_receipt(request: Request, digest: str = Path(pattern=HEX_DIGEST)) -> Any:
        raw = _digest(digest)
        if raw is None:
            return _error(400, "digest must be 32 bytes of hex")
        found = await receipts.get(raw)
        if isinstance(found, str):
            return _error(404, found)
        receipt, data = found
        if CBOR in request.headers.get("accept", ""):
            return Response(data, media_type=CBOR)
        return _receipt_json(raw, receipt, data)

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
            v.metrics.ignore(STREAM, "busy")
            return await ws.close(TRY_AGAIN_LATER, f"at most {MAX_STREAMS} streams")
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_until_gone, ws, nursery.cancel_scope)
                await _stream(ws, batches, v, namespace, start)
                nursery.cancel_scope.cancel()
        finally:
            streams.release()


async def _until_gone(ws: WebSocket, stream: trio.CancelScope) -> None:
    """Cancel ``stream`` once the consumer has left.

    Without this a stream would never end: hypercorn drops whatever is sent on
    a closed connection without an error, and only a receive sees the
    disconnect. A consumer has nothing to say; what it sends is dropped.
    """
    while (await ws.receive())["type"] != "websocket.disconnect":
        pass
    stream.cancel()


async def _stream(
    ws: WebSocket, batches: CertifiedBatches, v: Validator, namespace: str, height: int
) -> None:
    """Send every height from ``height`` on, each once certified, until the consumer leaves
    or takes longer than ``SEND_TIMEOUT_S`` for one message."""
    while True:
        await v.wait_certified(height)
        found = await batches.get(height, namespace)
        if found is None:  # certified but not readable yet (the writer's commit): next tick
            await trio.sleep(0.01)
            continue
        with trio.move_on_after(SEND_TIMEOUT_S) as timer:
            try:
                await ws.send_bytes(found[1])
            except WebSocketDisconnect:
                return  # the consumer left
        if trio.current_time() >= timer.deadline:  # the timer alone misses a shielded send
            await ws.close(POLICY_VIOLATION, "slow consumer")
            return
        height += 1


class TransactionView(BaseModel):
    digest: str = Field(pattern=HEX_DIGEST)
    plaintext: str | None = Field(description="hex; null when the ciphertext opened to nothing")


class NamespaceBatchView(BaseModel):
    """A namespace batch, readable; ``cbor`` is what a client verifies."""

    height: int
    namespace: str
    batch_hash: str = Field(pattern=HEX_DIGEST)
    block_hash: str = Field(pattern=HEX_DIGEST)
    signers: list[int]
    transactions: list[TransactionView]
    cbor: str = Field(description="the canonical CBOR NamespaceBatch, hex")


class DecryptedView(BaseModel):
    namespace: str
    plaintext: str | None
    batch_hash: str = Field(pattern=HEX_DIGEST)
    signers: list[int]


class BlockRef(BaseModel):
    height: int
    round: int


class ReceiptView(BaseModel):
    """A receipt, readable; ``cbor`` is what a client verifies."""

    digest: str = Field(pattern=HEX_DIGEST)
    height: int
    round: int
    position: int
    block_hash: str = Field(pattern=HEX_DIGEST)
    signers: list[int]
    commit_chain: list[BlockRef]
    commit_signers: list[int]
    decrypted: DecryptedView | None
    cbor: str = Field(description="the canonical CBOR Receipt, hex")


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


def _receipt_json(digest: bytes, receipt: Receipt, data: bytes) -> dict[str, Any]:
    inclusion = receipt.inclusion
    decrypted = None
    if inclusion is not None:
        leaf = inclusion.leaf
        decrypted = {
            "namespace": leaf.namespace,
            "plaintext": None if leaf.plaintext is None else leaf.plaintext.hex(),
            "batch_hash": batch_hash(inclusion.certificate.header).hex(),
            "signers": [s for s, _ in inclusion.certificate.signatures],
        }
    return {
        "digest": digest.hex(),
        "height": receipt.block.height,
        "round": receipt.block.round,
        "position": receipt.position,
        "block_hash": receipt.certificate.block_hash.hex(),
        "signers": [s for s, _ in receipt.certificate.signatures],
        "commit_chain": [{"height": b.height, "round": b.round} for b in receipt.commit_chain],
        "commit_signers": [s for s, _ in receipt.commit_certificate.signatures],
        "decrypted": decrypted,
        "cbor": data.hex(),
    }


def _digest(text: str) -> bytes | None:
    """Exactly 64 hex digits, else None (``bytes.fromhex`` alone skips spaces, takes any length)."""
    if len(text) != 64 or not all(c in string.hexdigits for c in text):
        return None
    return bytes.fromhex(text)


def _error(status: int, reason: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": reason})
