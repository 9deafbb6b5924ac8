"""A stand-in for OpenAI's Responses API on 127.0.0.1: every ``POST .../responses``
gets one canned assistant message, streamed as server-sent events.

WebSocket attempts (``GET .../responses``) are refused, so Codex falls back to
HTTPS streaming as it does against servers without WebSockets.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

INPUT_TOKENS = 30
CACHED_TOKENS = 4
OUTPUT_TOKENS = 5


class FakeOpenAI:
    """Serves ``POST /v1/responses`` on a free port; records requests and keys."""

    def __init__(self, reply: str = "Done.") -> None:
        self.reply = reply
        self.requests: list[dict[str, Any]] = []
        self.authorizations: set[str] = set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._send(404, json.dumps({"error": {"message": "no websockets here"}}).encode())

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                path = self.path.split("?")[0]
                server.requests.append({"path": path, "body": body})
                server.authorizations.add(self.headers.get("authorization", ""))
                if path.endswith("/responses"):
                    self._send(200, _sse(server.reply), "text/event-stream")
                else:
                    self._send(404, json.dumps({"error": {"message": path}}).encode())

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _sse(text: str) -> bytes:
    message = {
        "type": "message",
        "id": "msg_fake",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }
    usage = {
        "input_tokens": INPUT_TOKENS,
        "input_tokens_details": {"cached_tokens": CACHED_TOKENS},
        "output_tokens": OUTPUT_TOKENS,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
    }
    response = {"id": "resp_fake", "object": "response", "output": []}
    events = [
        {"type": "response.created", "sequence_number": 0, "response": {**response, "status": "in_progress"}},
        {"type": "response.output_item.done", "sequence_number": 1, "output_index": 0, "item": message},
        {"type": "response.completed", "sequence_number": 2, "response": {**response, "status": "completed", "usage": usage}},
    ]
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()
