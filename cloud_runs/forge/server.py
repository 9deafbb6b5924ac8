"""The HTTP front of the forge: one threaded server for REST, git and web pages.

Built on :class:`http.server.ThreadingHTTPServer` because git sends pushes over
1 MiB with ``Transfer-Encoding: chunked``, which ``wsgiref`` does not decode.
Every request passes fault injection first, then authentication, then routing,
and is recorded in :attr:`Forge.requests`.
"""

from __future__ import annotations

import html
import json
import math
import secrets
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from cloud_runs.forge.auth import AuthFailure, Caller, resolve_caller
from cloud_runs.forge.git_http import is_git_path, serve_git
from cloud_runs.forge.manifest import ManifestPages, is_manifest_path
from cloud_runs.forge.payloads import DOCS, error, iso
from cloud_runs.forge.rest import Response, RestApi
from cloud_runs.forge.state import FaultRule, RequestRecord

if TYPE_CHECKING:
    from cloud_runs.forge.forge import Forge

API_PREFIX = "/api/v3"
MAX_BODY = 512 * 1024 * 1024
SECONDARY_RATE_LIMIT = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID {request_id}."
)
RATE_LIMIT_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"


_BAD_GATEWAY = b"<html><body><h1>502 Bad Gateway</h1>Server Error</body></html>\n"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    forge: Forge
    api: RestApi
    manifest_pages: ManifestPages


def make_server(forge: Forge, host: str, port: int) -> ThreadingHTTPServer:
    """A server bound to ``host:port`` (0 picks a free port), not yet serving."""
    server = _Server((host, port), _Handler)
    server.forge = forge
    server.api = RestApi(forge)
    server.manifest_pages = ManifestPages(forge)
    return server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 300
    server: _Server

    def version_string(self) -> str:
        return "GitHub.com"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # requests are recorded in Forge.requests; stderr noise helps nobody

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = do_GET

    # plumbing ----------------------------------------------------------------
    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            total = 0
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                total += size
                if total > MAX_BODY:
                    raise ValueError("request body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)  # CRLF after each chunk
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError("request body too large")
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        if getattr(self, "_lose_answer", False):  # the work is done; the client sees a gateway error
            self._lose_answer = False
            status, headers, body = 502, [("Content-Type", "text/html; charset=utf-8")], _BAD_GATEWAY
        # The record gets the status the client sees, stored before answering,
        # so a client that got its answer always finds it.
        record, self._pending = getattr(self, "_pending", None), None
        if record is not None:
            record.status = status
            self.server.forge._record(record)
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    # dispatch ----------------------------------------------------------------
    def _dispatch(self) -> None:
        forge = self.server.forge
        split = urlsplit(self.path)
        path, raw_query = split.path, split.query
        query = parse_qs(raw_query, keep_blank_values=True)
        record = RequestRecord(self.command, path, query, 0, "anonymous")
        record.chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        self._pending: RequestRecord | None = record
        try:
            body = self._read_body()
        except ValueError:
            self.close_connection = True
            self._send(413, [("Content-Type", "text/plain")], b"Request body too large\n")
            return
        try:
            rule = forge._take_fault(self.command, path)
            if rule is not None:
                record.fault = rule.fault
                if rule.fault in ("timeout", "delay"):
                    time.sleep(rule.seconds)
                elif rule.fault == "502_after":
                    self._lose_answer = True
                else:
                    self._send_fault(rule)
                    return
            if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
                self._serve_rest(path[len(API_PREFIX) :] or "/", query, body, record)
            elif is_git_path(path):
                headers = {k.lower(): v for k, v in self.headers.items()}
                response = serve_git(forge, self.command, path, raw_query, headers, body, self.client_address[0])
                if response.caller is not None:
                    _note_caller(record, response.caller)
                self._send(response.status, response.headers, response.body)
            elif is_manifest_path(path):
                status, headers, page = self.server.manifest_pages.serve(self.command, path, query, body)
                self._send(status, headers, page)
            else:
                self._serve_page(path)
        except Exception as e:  # a forge bug must surface as a 500, not a dropped connection
            self.close_connection = True
            self._send(500, [("Content-Type", "text/plain; charset=utf-8")], f"forge error: {type(e).__name__}\n".encode())
            raise
        finally:
            if self._pending is not None:  # nothing was sent
                forge._record(self._pending)
                self._pending = None

    def _send_fault(self, rule: FaultRule) -> None:
        forge = self.server.forge
        if rule.fault == "502":
            self._send(502, [("Content-Type", "text/html; charset=utf-8")], _BAD_GATEWAY)
            return
        request_id = secrets.token_hex(8).upper()
        wait = max(math.ceil(rule.seconds), 1)
        if rule.fault == "secondary_rate_limit":
            payload = error(SECONDARY_RATE_LIMIT.format(request_id=request_id), f"{RATE_LIMIT_DOCS}#about-secondary-rate-limits")
            extra = [("retry-after", str(wait))]
            limits = self._limit_headers(5000, 5000 - 1, 1, int(forge.now()) + 3600)
        else:
            payload = error(
                "API rate limit exceeded for installation. If you reach out to GitHub Support for help, "
                f"please include the request ID {request_id}.",
                f"{RATE_LIMIT_DOCS}#about-the-primary-rate-limit",
            )
            extra = []
            limits = self._limit_headers(5000, 0, 5000, int(forge.now()) + wait)
        payload["status"] = "403"
        self._send_json(403, payload, [*limits, *extra, ("x-github-request-id", request_id)])
        return

    @staticmethod
    def _limit_headers(limit: int, remaining: int, used: int, reset: int) -> list[tuple[str, str]]:
        return [
            ("x-ratelimit-limit", str(limit)),
            ("x-ratelimit-remaining", str(remaining)),
            ("x-ratelimit-reset", str(reset)),
            ("x-ratelimit-used", str(used)),
            ("x-ratelimit-resource", "core"),
        ]

    def _send_json(self, status: int, payload: Any, headers: list[tuple[str, str]]) -> None:
        body = b"" if payload is None else json.dumps(payload).encode()
        base = [
            ("Content-Type", "application/json; charset=utf-8"),
            ("x-github-media-type", "github.v3; format=json"),
            ("x-github-api-version-selected", "2022-11-28"),
        ]
        if status == 204:
            base = [h for h in base if h[0] != "Content-Type"]
        self._send(status, [*base, *headers], body)

    def _serve_rest(self, subpath: str, query: dict[str, list[str]], body: bytes, record: RequestRecord) -> None:
        forge = self.server.forge
        try:
            caller = resolve_caller(forge, self.headers.get("Authorization"))
        except AuthFailure as failure:
            record.auth = "invalid"
            payload = error(failure.message, DOCS)
            payload["status"] = "401"
            used, remaining, reset = forge._rate_limit(f"ip:{self.client_address[0]}", 60)
            self._send_json(401, payload, self._limit_headers(60, remaining, used, reset))
            return
        _note_caller(record, caller)
        if caller.kind == "installation_token":
            key, limit = f"token:{caller.token.installation_id}", 5000
        elif caller.kind == "jwt":
            key, limit = f"app:{caller.app.id}", 5000
        else:
            key, limit = f"ip:{self.client_address[0]}", 60
        used, remaining, reset = forge._rate_limit(key, limit)
        headers = self._limit_headers(limit, remaining, used, reset)
        headers.append(("x-github-request-id", secrets.token_hex(8).upper()))
        if caller.kind == "installation_token":
            expiry = iso(caller.token.expires_at).replace("T", " ").replace("Z", " UTC")
            headers.append(("github-authentication-token-expiration", expiry))
        if used > limit:
            payload = error(f"API rate limit exceeded for {self.client_address[0]}.", f"{RATE_LIMIT_DOCS}#about-the-primary-rate-limit")
            payload["status"] = "403"
            self._send_json(403, payload, headers)
            return
        try:
            response = self.server.api.handle(self.command, subpath, query, caller, body)
        except Exception as e:  # a forge bug must surface as a 500, not a dropped connection
            response = Response(500, error(f"forge internal error: {type(e).__name__}: {e}"))
        if isinstance(response.body, dict) and "message" in response.body and "status" in response.body:
            response.body["status"] = str(response.status)
        headers.extend(response.headers.items())
        self._send_json(response.status, response.body, headers)
    def _serve_page(self, path: str) -> None:
        """Minimal read-only web pages for the ``html_url`` links (local development aid)."""
        forge = self.server.forge
        parts = [p for p in path.split("/") if p]
        title, lines = "Cloud Runs forge", []
        with forge._lock:
            if not parts:
                lines = [f'<li><a href="/{r.full_name}">{html.escape(r.full_name)}</a></li>' for r in forge._repos.values()]
            else:
                repo = forge._repo("/".join(parts[:2])) if len(parts) >= 2 else None
                if repo is None:
                    self._send(404, [("Content-Type", "text/html; charset=utf-8")], b"<h1>404</h1>\n")
                    return
                title = repo.full_name
                if len(parts) == 4 and parts[2] in ("pull", "issues") and parts[3].isdigit():
                    issue = repo.issues.get(int(parts[3]))
                    if issue is None:
                        self._send(404, [("Content-Type", "text/html; charset=utf-8")], b"<h1>404</h1>\n")
                        return
                    title = f"{issue.title} #{issue.number}"
                    lines = [f"<p>{html.escape(issue.state)} by {html.escape(issue.user)}</p>"]
                    if issue.is_pull:
                        lines.append(f"<p>{html.escape(issue.head_ref)} &rarr; {html.escape(issue.base_ref)}</p>")
                    lines.append(f"<pre>{html.escape(issue.body or '')}</pre>")
                    lines += [f"<hr><b>{html.escape(c.user)}</b><pre>{html.escape(c.body)}</pre>" for c in issue.comments]
                else:
                    lines = [
                        f'<li><a href="/{repo.full_name}/{"pull" if i.is_pull else "issues"}/{i.number}">'
                        f"#{i.number} {html.escape(i.title)}</a> ({i.state})</li>"
                        for i in repo.issues.values()
                    ]
        page = f"<!doctype html><title>{html.escape(title)}</title><h1>{html.escape(title)}</h1><ul>{''.join(lines)}</ul>\n"
        self._send(200, [("Content-Type", "text/html; charset=utf-8")], page.encode())

def _note_caller(record: RequestRecord, caller: Caller) -> None:
    record.auth = caller.kind
    if caller.token is not None:
        record.token_id = caller.token.id
    if caller.app is not None:
        record.app_id = caller.app.id
