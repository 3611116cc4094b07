"""The node's HTTP API (JSON, OpenAPI at ``/openapi.json``) and its ``/metrics`` port.

Routes are thin: each reads the validator's state or hands a submission to the
ingress, and every refusal is a JSON ``{"error": reason}`` with a 4xx status.
Served by hypercorn on the node's own trio loop, so handlers touch node state
without locks.

Every input is bounded before the validator sees it: heights to SQLite's integer
range, digests to 32 bytes, bodies in size and in time (hypercorn closes idle
connections and slow headers after 5 s, but would wait for a body forever).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio
from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from hypercorn.config import Config
from hypercorn.trio import serve
from prometheus_client.exposition import choose_encoder
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Route, Router

from sequencer_net import __version__
from sequencer_net.base import codec
from sequencer_net.node.rollup_api import add_rollup_routes

if TYPE_CHECKING:
    from sequencer_net.node.validator import Validator

MAX_BODY_BYTES = 256 * 1024
MAX_BATCH_BODY_BYTES = 8 * 1024 * 1024
MAX_BATCH_TXS = 4096
BODY_TIMEOUT_S = 5.0  # the whole body, like hypercorn's bound on idle connections and headers
MAX_HEIGHT = 2**63 - 1  # SQLite's largest integer: beyond it a lookup fails, not misses
DIGEST_BYTES = 32  # sha256, as mev.kem.digest
REFUSAL_STATUS = {"duplicate": 409, "overloaded": 429, "oversized": 413}


def build_app(v: Validator) -> FastAPI:
    app = FastAPI(
        title="seqnet validator",
        version=__version__,
        description=(
            "Submit threshold-encrypted transactions; read status, decrypted batches and "
            "certified namespace batches. A rollup follows its namespace over the WebSocket "
            "/v1/namespaces/{namespace}/stream?from=H: one CBOR NamespaceBatch per height."
        ),
        exception_handlers={RequestValidationError: _invalid_request, HTTPException: _http_refusal},
    )

    @app.post(
        "/v1/transactions",
        status_code=202,
        summary="Submit one encrypted transaction (canonical CBOR bytes, as `seqnet encrypt`)",
        responses={400: {"description": "refused, with the reason"}, 409: {}, 413: {}, 429: {}},
    )
    async def submit(request: Request) -> Any:
        body = await _read_body(request)
        if isinstance(body, Response):
            return body
        data = _ciphertext_bytes(body, request.headers.get("content-type", ""))
        if data is None:
            return _error(400, "malformed")
        verdict = await v.submit(data, _client(request))
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
        if isinstance(body, Response):
            return body
        txs = _cbor_byte_strings(body)
        if txs is None:
            return _error(400, f"expected a CBOR array of at most {MAX_BATCH_TXS} byte strings")
        verdicts = await v.submit_many(txs, _client(request))
        return {
            "results": [
                {"digest": x.digest.hex(), "status": "pending" if x.accepted else x.reason}
                for x in verdicts
            ]
        }

    @app.get("/v1/transactions/{digest}", summary="Where a transaction is: pending to decrypted")
    async def transaction(digest: str) -> Any:
        raw = _digest(digest)
        if raw is None:
            return _error(400, f"digest must be {DIGEST_BYTES} bytes of hex")
        return v.transaction_status(raw)

    @app.get("/v1/status", summary="Height, round, leader, peers, last commit age")
    async def status() -> Any:
        return v.status()

    @app.get("/v1/batches/{height}", summary="The decrypted batch at a height")
    async def batch(
        height: int = Path(ge=1, le=MAX_HEIGHT), namespace: str | None = Query(default=None)
    ) -> Any:
        found = await trio.to_thread.run_sync(v.reader.batch, height)
        if found is None:
            return _error(404, "not decrypted yet")
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

    add_rollup_routes(app, v)
    return app


async def _read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes | Response:
    """The whole body, or the refusal to send instead (413 too big, 408 too slow).

    The deadline is what frees a connection whose client sent the headers and a
    few bytes, then nothing: hypercorn has no timer running while a handler waits
    for the body. Either refusal leaves the body unread, so hypercorn closes the
    connection after answering.
    """
    with trio.move_on_after(BODY_TIMEOUT_S):
        body = await _read_capped(request, limit)
        return _error(413, "oversized", close=True) if body is None else body
    return _error(408, f"body not received within {BODY_TIMEOUT_S:g} s", close=True)


async def _read_capped(request: Request, limit: int) -> bytes | None:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _digest(text: str) -> bytes | None:
    """The digest spelled by exactly 64 hex digits; ``bytes.fromhex`` alone takes any length."""
    if len(text) != 2 * DIGEST_BYTES:
        return None
    try:
        return bytes.fromhex(text)  # 64 characters with a space in them fail here: odd length
    except ValueError:
        return None


def _client(request: Request) -> tuple[str, int] | None:
    """The client's connection (host, port): each gets its own share of check time."""
    return None if request.client is None else (request.client.host, request.client.port)


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


def _error(status: int, reason: str, digest: bytes = b"", *, close: bool = False) -> JSONResponse:
    content: dict[str, str] = {"error": reason}
    if digest:
        content["digest"] = digest.hex()
    headers = {"connection": "close"} if close else None
    return JSONResponse(status_code=status, content=content, headers=headers)


async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A path or query parameter of the wrong type or out of range: 400 with what was wrong."""
    problems = [f"{e['loc'][-1]}: {e['msg']}" for e in exc.errors()]
    return _error(400, "; ".join(problems))


async def _http_refusal(request: Request, exc: HTTPException) -> JSONResponse:
    """Starlette's own refusals (no such route 404, wrong method 405) in the API's shape."""
    response = _error(exc.status_code, str(exc.detail))
    response.headers.update(exc.headers or {})
    return response


async def serve_http(app: Any, bind: str, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    config = Config()
    config.bind = [bind]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 1.0
    await serve(app, config, task_status=task_status)


def metrics_app(v: Validator) -> Router:
    """``GET /metrics`` (and HEAD); any other path is 404, any other method 405.

    ``prometheus_client.make_asgi_app`` answers every path and method with the
    metrics, which makes each probe of a scanner look like a success.
    """

    async def metrics(request: Request) -> Response:
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encode(v.metrics.registry), media_type=content_type)

    return Router(routes=[Route("/metrics", metrics, methods=["GET"])], redirect_slashes=False)
