"""The node's HTTP API (JSON, OpenAPI at ``/openapi.json``) and its ``/metrics`` port.

Routes are thin: each reads the validator's state or hands a submission to the
ingress, and every refusal is a JSON ``{"error": reason}`` with a 4xx status.
Served by hypercorn on the node's own trio loop, so handlers touch node state
without locks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse
from hypercorn.config import Config
from hypercorn.trio import serve
from prometheus_client import make_asgi_app

from sequencer_net import __version__, codec

if TYPE_CHECKING:
    from sequencer_net.validator import Validator

MAX_BODY_BYTES = 256 * 1024
MAX_BATCH_BODY_BYTES = 8 * 1024 * 1024
MAX_BATCH_TXS = 4096
REFUSAL_STATUS = {"duplicate": 409, "overloaded": 429, "oversized": 413}


def build_app(v: Validator) -> FastAPI:
    app = FastAPI(
        title="seqnet validator",
        version=__version__,
        description="Submit threshold-encrypted transactions; read status and decrypted batches.",
    )

    @app.post(
        "/v1/transactions",
        status_code=202,
        summary="Submit one encrypted transaction (canonical CBOR bytes, as `seqnet encrypt`)",
        responses={400: {"description": "refused, with the reason"}, 409: {}, 413: {}, 429: {}},
    )
    async def submit(request: Request) -> Any:
        body = await _read_body(request)
        if body is None:
            return _error(413, "oversized")
        data = _ciphertext_bytes(body, request.headers.get("content-type", ""))
        if data is None:
            return _error(400, "malformed")
        verdict = await v.submit(data)
        if not verdict.accepted:
            return _error(REFUSAL_STATUS.get(verdict.reason, 400), verdict.reason, verdict.digest)
        return {"digest": verdict.digest.hex(), "status": "pending"}

    @app.post(
        "/v1/transactions/batch",
        summary="Submit many encrypted transactions: a CBOR array of ciphertext byte strings",
        responses={400: {"description": "not a CBOR array of byte strings"}, 413: {}},
    )
    async def submit_batch(request: Request) -> Any:
        body = await _read_body(request, MAX_BATCH_BODY_BYTES)
        if body is None:
            return _error(413, "oversized")
        txs = _cbor_byte_strings(body)
        if txs is None:
            return _error(400, f"expected a CBOR array of at most {MAX_BATCH_TXS} byte strings")
        verdicts = await v.submit_many(txs)
        return {
            "results": [
                {"digest": x.digest.hex(), "status": "pending" if x.accepted else x.reason}
                for x in verdicts
            ]
        }

    @app.get("/v1/transactions/{digest}", summary="Where a transaction is: pending to decrypted")
    async def transaction(digest: str) -> Any:
        try:
            raw = bytes.fromhex(digest)
        except ValueError:
            return _error(400, "digest must be hex")
        return v.transaction_status(raw)

    @app.get("/v1/status", summary="Height, view, leader, peers, last commit age")
    async def status() -> Any:
        return v.status()

    @app.get("/v1/batches/{height}", summary="The decrypted batch at a height")
    async def batch(height: int, namespace: str | None = Query(default=None)) -> Any:
        found = await trio.to_thread.run_sync(v.store.batch, height)
        if found is None:
            return _error(404, "not decrypted yet" if height >= 1 else "no such height")
        return {
            "height": found.height,
            "block_hash": found.block_hash.hex(),
            "transactions": [
                {
                    "position": i,
                    "namespace": tx.namespace,
                    "digest": tx.digest.hex(),
                    "plaintext": None if tx.plaintext is None else tx.plaintext.hex(),
                }
                for i, tx in enumerate(found.txs)
                if namespace is None or tx.namespace == namespace
            ],
        }

    return app


async def _read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes | None:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _ciphertext_bytes(body: bytes, content_type: str) -> bytes | None:
    """Raw CBOR (``application/cbor``) or hex text (what ``seqnet encrypt`` prints)."""
    if content_type.startswith("application/cbor"):
        return body
    try:
        return bytes.fromhex(body.decode().strip())
    except (UnicodeDecodeError, ValueError):
        return None


def _cbor_byte_strings(body: bytes) -> list[bytes] | None:
    try:
        items = codec.loads_canonical(body, max_bytes=MAX_BATCH_BODY_BYTES)
    except codec.DecodeError:
        return None
    if type(items) is not list or len(items) > MAX_BATCH_TXS:
        return None
    if not all(type(x) is bytes for x in items):
        return None
    return items


def _error(status: int, reason: str, digest: bytes = b"") -> JSONResponse:
    content: dict[str, str] = {"error": reason}
    if digest:
        content["digest"] = digest.hex()
    return JSONResponse(status_code=status, content=content)


async def serve_http(app: Any, bind: str, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    config = Config()
    config.bind = [bind]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 1.0
    await serve(app, config, task_status=task_status)


def metrics_app(v: Validator) -> Any:
    return make_asgi_app(v.metrics.registry)
