"""The small HTTP client every caller of a node's API shares: GET JSON, POST CBOR.

A node speaks JSON over HTTP; its refusals carry an ``{"error": reason}`` body.
Programs that submit transactions or read batches (``seqnet submit``, the load
client, operator tooling, later rollups) should not each parse that, so the
reason is lifted into :class:`ClientError` here. Synchronous urllib: callers
are scripts and threads, no event loop is needed.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

import trio

T = TypeVar("T")


class ClientError(Exception):
    """A node that does not answer, or refuses: one line, with the node's own reason.

    ``status`` is the HTTP status of a refusal and ``reason`` the node's ``error``
    (or the HTTP reason phrase); both are None when nothing answered.
    """

    def __init__(self, message: str, *, status: int | None = None, reason: str | None = None):
        super().__init__(message)
        self.status = status
        self.reason = reason


def get_json(address: str, path: str, timeout: float = 2.0) -> Any:
    """GET http://address/path as JSON; raises ClientError on any failure."""
    request = urllib.request.Request(f"http://{address}{path}")
    return _answer(request, timeout, address, f"{address}{path}: HTTP {{status}} {{reason}}")


def get_cbor(address: str, path: str, max_bytes: int, timeout: float = 5.0) -> bytes:
    """GET http://address/path asking for CBOR: at most ``max_bytes + 1`` bytes of it.

    The caller decodes (and so refuses) anything longer than ``max_bytes``.
    """
    request = urllib.request.Request(
        f"http://{address}{path}", headers={"accept": "application/cbor"}
    )
    refused = f"{address}{path}: HTTP {{status}} {{reason}}"
    data: bytes = _answer(request, timeout, address, refused, lambda r: r.read(max_bytes + 1))
    return data


def post(address: str, path: str, body: bytes, timeout: float = 10.0) -> Any:
    """POST a CBOR ``body`` to http://address/path; the JSON answer, or ClientError."""
    request = urllib.request.Request(
        f"http://{address}{path}",
        data=body,
        headers={"content-type": "application/cbor"},
        method="POST",
    )
    return _answer(request, timeout, address, f"{address} refused the transaction: {{reason}}")


def _answer(
    request: urllib.request.Request,
    timeout: float,
    address: str,
    refused: str,
    read: Callable[[Any], Any] = json.load,
) -> Any:
    """The answer to ``request`` (JSON unless ``read`` says otherwise).

    A refusal is told with ``refused``, a format string of ``status`` and ``reason``.
    """
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return read(response)
    except urllib.error.HTTPError as exc:
        reason = _reason(exc)
        message = refused.format(status=exc.code, reason=reason)
        raise ClientError(message, status=exc.code, reason=reason) from None
    except (OSError, ValueError, http.client.HTTPException) as exc:  # e.g. IncompleteRead
        raise ClientError(f"{address}: {exc}") from None


def _reason(exc: urllib.error.HTTPError) -> str:
    """The node's ``error`` from a refusal's JSON body, else the HTTP reason phrase."""
    try:
        return str(json.load(exc).get("error", exc.reason))
    except (ValueError, AttributeError, OSError):
        return str(exc.reason)


async def in_thread(call: Callable[..., T], *args: Any) -> T:
    """``call(*args)`` in a worker thread, for trio code; cancelling abandons it.

    The blocking HTTP calls here end by their own timeouts, so an abandoned
    thread finishes soon and Ctrl-C is prompt.
    """
    abandon: dict[str, Any] = {"abandon_on_cancel": True}  # the installed trio-stubs predate it
    return await trio.to_thread.run_sync(call, *args, **abandon)
