"""The HTTP client: answers, refusals with the node's reason, and nodes that do not answer."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sequencer_net.client.http import ClientError, get_json, post


class _Node(BaseHTTPRequestHandler):
    """Answers like a node: JSON, refusals as ``{"error": reason}``."""

    def do_GET(self) -> None:
        if self.path == "/v1/status":
            self._reply(200, {"height": 7})
        else:
            self._reply(404, {"error": "not decrypted yet"})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        if self.headers["content-type"] != "application/cbor":
            self._reply(415, {"error": "wrong content type"})
        elif body == b"seen":
            self._reply(409, {"error": "duplicate"})
        else:
            self._reply(202, {"digest": body.hex()})

    def _reply(self, status: int, answer: dict[str, object]) -> None:
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def node() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Node)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_answers_are_json(node: str) -> None:
    assert get_json(node, "/v1/status") == {"height": 7}
    assert post(node, "/v1/transactions", b"\x01") == {"digest": "01"}


def test_a_refusal_carries_the_nodes_reason_and_status(node: str) -> None:
    with pytest.raises(ClientError) as refused:
        post(node, "/v1/transactions", b"seen")
    assert (refused.value.status, refused.value.reason) == (409, "duplicate")
    assert str(refused.value) == f"{node} refused the transaction: duplicate"
    with pytest.raises(ClientError) as missing:
        get_json(node, "/v1/batches/9")
    assert str(missing.value) == f"{node}/v1/batches/9: HTTP 404 not decrypted yet"


def test_a_node_that_does_not_answer_is_one_line() -> None:
    with pytest.raises(ClientError) as down:
        get_json("127.0.0.1:1", "/v1/status", timeout=1)
    assert down.value.status is None and str(down.value).startswith("127.0.0.1:1: ")
