"""The node's HTTP API (JSON, OpenAPI at ``/openapi.json``) and its ``/metrics`` port.

Routes are thin: each reads the validator's state or hands a submission to the
ingress, and every refusal is a JSON ``{"error": reason}`` with a 4xx status.
Served by hypercorn on the node's own trio loop, so handlers touch node state
without locks.

Every input is bounded before the validator sees it: heights to SQLite's integer
range, digests to 32 bytes, bodies in size and in time (hypercorn closes idle
connections and slow headers after 5 s, but would wait for a body forever).

The OpenAPI document describes every answer: each route declares the status
codes it can refuse with, every 4xx body is a :class:`Refusal` (filled in for
any route that declares a refusal without a body, rollup routes included), and
a parameter of the wrong type or out of range is documented as the 400 it is,
not as FastAPI's 422 (never sent). ``tests/test_api_fuzz.py`` holds a running
node to that document.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any, Literal

import trio
from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from hypercorn.config import Config, Sockets
from hypercorn.trio import serve
from prometheus_client.exposition import choose_encoder
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Route, Router

from sequencer_net import __version__
from sequencer_net.base import codec
from sequencer_net.node.rollup_api import SEND_TIMEOUT_S, add_rollup_routes

if TYPE_CHECKING:
    from sequencer_net.node.validator import Validator

MAX_BODY_BYTES = 256 * 1024
MAX_BATCH_BODY_BYTES = 8 * 1024 * 1024
MAX_BATCH_TXS = 4096
BODY_TIMEOUT_S = 5.0  # the whole body, like hypercorn's bound on idle connections and headers
MAX_HEIGHT = 2**63 - 1  # SQLite's largest integer: beyond it a lookup fails, not misses
DIGEST_BYTES = 32  # sha256, as mev.kem.digest
REFUSAL_STATUS = {"duplicate": 409, "overloaded": 429, "oversized": 413}
HEX_DIGEST = f"^[0-9a-fA-F]{{{2 * DIGEST_BYTES}}}$"


class Refusal(BaseModel):
    """The body of every refusal (4xx): why, and for a refused transaction its digest."""

    model_config = ConfigDict(extra="forbid")
    error: str = Field(description="why the request was refused")
    digest: str | None = Field(
        default=None, description="the refused transaction's digest (hex), when it has one"
    )


class Submitted(BaseModel):
    digest: str = Field(pattern=HEX_DIGEST)
    status: Literal["pending"]


class BatchVerdict(BaseModel):
    digest: str = Field(description="hex; empty for an item that is not a ciphertext")
    status: str = Field(description="`pending`, or the reason the item was refused")


class BatchVerdicts(BaseModel):
    results: list[BatchVerdict] = Field(description="one per submitted item, in order")


class TransactionStatus(BaseModel):
    digest: str = Field(pattern=HEX_DIGEST)
    status: Literal["unknown", "pending", "committed", "decrypted", "invalid"]
    height: int | None = Field(default=None, description="once committed")
    position: int | None = Field(default=None, description="once decrypted (or invalid)")
    namespace: str | None = None
    plaintext: str | None = Field(default=None, description="hex; null if it did not decrypt")


class NodeStatus(BaseModel):
    chain_id: str
    genesis: str = Field(description="the genesis fingerprint")
    index: int
    height: int
    decrypted_height: int
    certified_height: int
    round: int
    view: int = Field(deprecated=True, description="the same as `round`; will be removed")
    leader: int
    peers: int
    last_commit_age_s: float | None
    mempool: int
    syncing: bool


class DecryptedTransaction(BaseModel):
    position: int
    namespace: str
    digest: str = Field(pattern=HEX_DIGEST)
    plaintext: str | None = Field(description="hex; null if it did not decrypt")


class DecryptedBatch(BaseModel):
    height: int
    block_hash: str
    transactions: list[DecryptedTransaction]


class CommittedBlock(BaseModel):
    height: int
    block_hash: str = Field(description="hex; the same at this height on every honest node")
    round: int
    proposer: int
    transactions: int = Field(description="transactions the block orders")


REFUSALS = {
    400: "malformed request; `error` says what is wrong",
    404: "not found",
    408: f"the body did not arrive within {BODY_TIMEOUT_S:g} s",
    409: "duplicate: already pending or committed; `digest` names it",
    413: "oversized",
    429: "overloaded: the node's queues are full; try again later or another node",
}
HEX_BODY = {"type": "string", "pattern": "^\\s*([0-9a-fA-F]{2})+\\s*$"}
CIPHERTEXT_BODY = {
    "required": True,
    "content": {
        "application/cbor": {"schema": {"type": "string", "format": "binary"}},
        "text/plain": {"schema": HEX_BODY},
    },
}
BATCH_BODY = {
    "required": True,
    "content": {
        "application/cbor": {
            "schema": {
                "type": "array",
                "maxItems": MAX_BATCH_TXS,
                "items": {"type": "string", "format": "binary"},
            }
        }
    },
}


def refusals(*codes: int, **described: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for these refusals, each a :class:`Refusal`; ``e404="..."`` rewords one."""
    return {
        code: {"model": Refusal, "description": described.get(f"e{code}", REFUSALS[code])}
        for code in codes
    }


class NodeAPI(FastAPI):
    """FastAPI whose OpenAPI document says what the node does with refusals (see above)."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            self.openapi_schema = _refusals_documented(super().openapi())
        return self.openapi_schema


def _refusals_documented(doc: dict[str, Any]) -> dict[str, Any]:
    """422 (never sent) becomes the 400 it is; every 4xx without a body gets :class:`Refusal`."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas.setdefault("Refusal", Refusal.model_json_schema())
    refusal = {"$ref": "#/components/schemas/Refusal"}
    fastapi_422 = {"$ref": "#/components/schemas/HTTPValidationError"}
    for item in doc.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            invalid = responses.get("422", {}).get("content", {}).get("application/json", {})
            if invalid.get("schema") == fastapi_422:
                del responses["422"]
                responses.setdefault(
                    "400", {"description": "a parameter of the wrong type or out of range"}
                )
            for code, response in responses.items():
                if code.startswith("4") and "content" not in response:
                    response["content"] = {"application/json": {"schema": dict(refusal)}}
            operation["responses"] = dict(sorted(responses.items()))
    return doc


def build_app(v: Validator) -> FastAPI:
    app = NodeAPI(
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
        responses={
            202: {"model": Submitted},
            **refusals(
                400, 408, 409, 413, 429, e400="not a ciphertext, unknown namespace, bad proof"
            ),
        },
        openapi_extra={"requestBody": CIPHERTEXT_BODY},
    )
    async def submit(request: Request) -> Any:
        body = await read_body(request)
        if isinstance(body, Response):
            return body
        data = _ciphertext_bytes(body, request.headers.get("content-type", ""))
        if data is None:
            return refusal(400, "malformed")
        verdict = await v.submit(data, _client(request))
        if not verdict.accepted:
            return refusal(REFUSAL_STATUS.get(verdict.reason, 400), verdict.reason, verdict.digest)
        return {"digest": verdict.digest.hex(), "status": "pending"}

    @app.post(
        "/v1/transactions/batch",
        summary="Submit many encrypted transactions: a CBOR array of ciphertext byte strings",
        responses={
            200: {"model": BatchVerdicts},
            **refusals(400, 408, 413, e400="not a CBOR array of byte strings"),
        },
        openapi_extra={"requestBody": BATCH_BODY},
    )
    async def submit_batch(request: Request) -> Any:
        body = await read_body(request, MAX_BATCH_BODY_BYTES)
        if isinstance(body, Response):
            return body
        txs = cbor_byte_strings(body)
        if txs is None:
            return refusal(400, f"expected a CBOR array of at most {MAX_BATCH_TXS} byte strings")
        verdicts = await v.submit_many(txs, _client(request))
        return {
            "results": [
                {"digest": x.digest.hex(), "status": "pending" if x.accepted else x.reason}
                for x in verdicts
            ]
        }

    @app.get(
        "/v1/transactions/{digest}",
        summary="Where a transaction is: pending to decrypted",
        responses={200: {"model": TransactionStatus}, **refusals(400)},
    )
    async def transaction(digest: str = Path(pattern=HEX_DIGEST)) -> Any:
        raw = _digest(digest)
        if raw is None:
            return refusal(400, f"digest must be {DIGEST_BYTES} bytes of hex")
        return v.transaction_status(raw)

    @app.get(
        "/v1/status",
        summary="Height, round, leader, peers, last commit age",
        responses={200: {"model": NodeStatus}},
    )
    async def status() -> Any:
        return v.status()

    @app.get(
        "/v1/batches/{height}",
        summary="The decrypted batch at a height",
        responses={
            200: {"model": DecryptedBatch},
            **refusals(400, 404, e404="not decrypted yet"),
        },
    )
    async def batch(
        height: int = Path(ge=1, le=MAX_HEIGHT), namespace: str | None = Query(default=None)
    ) -> Any:
        found = await trio.to_thread.run_sync(v.reader.batch, height)
        if found is None:
            return refusal(404, "not decrypted yet")
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

    @app.get(
        "/v1/blocks/{height}",
        summary="The block this node committed at a height (what agreement is checked on)",
        responses={200: {"model": CommittedBlock}, **refusals(400, 404, e404="not committed")},
    )
    async def block(height: int = Path(ge=1, le=MAX_HEIGHT)) -> Any:
        commits = await trio.to_thread.run_sync(v.reader.commits, height, 1)
        if not commits or commits[0].block.height != height:
            return refusal(404, "not committed")
        commit = commits[0]
        return {
            "height": height,
            "block_hash": commit.block_hash.hex(),
            "round": commit.block.round,
            "proposer": commit.block.proposer,
            "transactions": len(v.order_of(commit)),
        }

    add_rollup_routes(app, v)
    return app


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes | Response:
    """The whole body, or the refusal to send instead (413 too big, 408 too slow).

    The deadline is what frees a connection whose client sent the headers and a
    few bytes, then nothing: hypercorn has no timer running while a handler waits
    for the body. Either refusal leaves the body unread, so hypercorn closes the
    connection after answering.
    """
    with trio.move_on_after(BODY_TIMEOUT_S):
        body = await _read_capped(request, limit)
        return refusal(413, "oversized", close=True) if body is None else body
    return refusal(408, f"body not received within {BODY_TIMEOUT_S:g} s", close=True)


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


def cbor_byte_strings(body: bytes) -> list[bytes] | None:
    try:
        items = codec.loads_canonical(body, max_bytes=MAX_BATCH_BODY_BYTES)
    except codec.DecodeError:
        return None
    if type(items) is not list or len(items) > MAX_BATCH_TXS:
        return None
    if not all(type(x) is bytes for x in items):
        return None
    return items


def refusal(status: int, reason: str, digest: bytes = b"", *, close: bool = False) -> JSONResponse:
    content: dict[str, str] = {"error": reason}
    if digest:
        content["digest"] = digest.hex()
    headers = {"connection": "close"} if close else None
    return JSONResponse(status_code=status, content=content, headers=headers)


async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A path or query parameter of the wrong type or out of range: 400 with what was wrong."""
    problems = [f"{e['loc'][-1]}: {e['msg']}" for e in exc.errors()]
    return refusal(400, "; ".join(problems))


async def _http_refusal(request: Request, exc: HTTPException) -> JSONResponse:
    """Starlette's own refusals (no such route 404, wrong method 405) in the API's shape."""
    response = refusal(exc.status_code, str(exc.detail))
    response.headers.update(exc.headers or {})
    return response


STALLED_ABORT_S = 2 * SEND_TIMEOUT_S  # a peer that takes no byte this long is cut off


class _Config(Config):
    """hypercorn's settings; its sockets drop a peer that takes nothing for ``STALLED_ABORT_S``.

    hypercorn's socket writes cannot be cancelled, so a client that stops
    reading would hold its connection, its handler and node shutdown forever.
    ``TCP_USER_TIMEOUT`` (inherited by accepted sockets) makes the kernel abort
    such a connection (on Linux also while the peer's window stays shut).
    """

    def create_sockets(self) -> Sockets:
        sockets = super().create_sockets()
        for sock in sockets.insecure_sockets:
            if hasattr(socket, "TCP_USER_TIMEOUT") and sock.family != socket.AF_UNIX:
                sock.setsockopt(
                    socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(STALLED_ABORT_S * 1000)
                )
        return sockets


async def serve_http(app: Any, bind: str, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    config = _Config()
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
