"""A stand-in for Anthropic's Messages API on 127.0.0.1 that answers every request
with one canned assistant text, streamed (SSE) or not, as the public API does.

Used to run the real ``@posthog/agent`` runner end to end without the internet.

Example:
    >>> with FakeAnthropic(reply="Done.") as server:  # doctest: +SKIP
    ...     os.environ["ANTHROPIC_BASE_URL"] = server.url
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

INPUT_TOKENS = 21
OUTPUT_TOKENS = 7


class FakeAnthropic:
    """Serves ``POST /v1/messages`` (and ``/v1/messages/count_tokens``) on a free port."""

    def __init__(self, reply: str = "Done.") -> None:
        self.reply = reply
        self.requests: list[dict[str, Any]] = []
        self.api_keys: set[str] = set()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet test output
                pass

            def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.send_header("request-id", "req_fake")
                self.end_headers()
                self.wfile.write(body)

            def do_HEAD(self) -> None:
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                self._send(404, json.dumps({"type": "error", "error": {"type": "not_found_error", "message": self.path}}).encode())

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                path = self.path.split("?")[0]
                with server.lock:  # requests arrive on several threads
                    server.requests.append({"path": path, "body": body})
                    key = self.headers.get("x-api-key") or self.headers.get("authorization", "")
                    server.api_keys.add(key)
                if path.endswith("/v1/messages/count_tokens"):
                    self._send(200, json.dumps({"input_tokens": INPUT_TOKENS}).encode())
                elif path.endswith("/v1/messages"):
                    model = body.get("model", "claude-fake")
                    if body.get("stream"):
                        self._send(200, _sse(server.reply, model), "text/event-stream")
                    else:
                        self._send(200, json.dumps(_message(server.reply, model)).encode())
                else:
                    self._send(404, json.dumps({"type": "error", "error": {"type": "not_found_error", "message": path}}).encode())

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeAnthropic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _usage(output_tokens: int) -> dict[str, int]:
    return {
        "input_tokens": INPUT_TOKENS,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def _message(text: str, model: str) -> dict[str, Any]:
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": _usage(OUTPUT_TOKENS),
    }


def _sse(text: str, model: str) -> bytes:
    start = {**_message("", model), "content": [], "stop_reason": None, "usage": _usage(1)}
    events = [
        ("message_start", {"type": "message_start", "message": start}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": OUTPUT_TOKENS}},
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events).encode()
