"""Two ways to drive a web page in tests: a real headless Chromium, or an HTML form follower.

:class:`FormFollower` is a small browser for plain HTML: it parses the page's form,
submits the fields the form holds (hidden inputs, text inputs, the pressed button)
to the form's action with the form's method, and follows redirects, like a browser
without JavaScript. :class:`Chromium` drives Debian's chromium through chromedriver's
W3C WebDriver HTTP API.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin

HTTP_TIMEOUT = 30


@dataclass
class Form:
    action: str
    method: str
    fields: list[tuple[str, str]] = field(default_factory=list)
    buttons: list[tuple[str, str, str]] = field(default_factory=list)  # (id, name, value)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._current: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._current = Form(a.get("action", ""), (a.get("method") or "get").upper())
            self.forms.append(self._current)
        elif self._current is not None and tag == "input" and a.get("name"):
            if a.get("type", "text") in ("hidden", "text", "password", "email", "url"):
                self._current.fields.append((a["name"], a.get("value", "")))
        elif self._current is not None and tag == "button":
            self._current.buttons.append((a.get("id", ""), a.get("name", ""), a.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        return None  # redirects are followed by FormFollower itself, so each hop is recorded


@dataclass
class FormFollower:
    """Loads pages and submits their forms, following redirects; records every URL visited."""

    url: str = ""
    status: int = 0
    html: str = ""
    visited: list[tuple[str, str, int]] = field(default_factory=list)
    stop_at: str | None = None  # a redirect to a URL starting with this is recorded, not followed

    def __post_init__(self) -> None:
        self._opener = urllib.request.build_opener(_NoRedirect)

    def open(self, url: str, data: bytes | None = None, method: str = "GET") -> FormFollower:
        for _ in range(10):
            if self.stop_at and url.startswith(self.stop_at):
                self.url, self.status, self.html = url, 0, ""
                return self
            request = urllib.request.Request(url, data=data, method=method)
            if data is not None:
                request.add_header("Content-Type", "application/x-www-form-urlencoded")
            try:
                response = self._opener.open(request, timeout=HTTP_TIMEOUT)
                status, headers, body = response.status, response.headers, response.read()
            except urllib.error.HTTPError as e:
                status, headers, body = e.code, e.headers, e.read()
            self.visited.append((method, url, status))
            if status in (301, 302, 303, 307, 308) and headers.get("Location"):
                url = urljoin(url, headers["Location"])
                if status in (301, 302, 303):
                    data, method = None, "GET"
                continue
            self.url, self.status, self.html = url, status, body.decode("utf-8", "replace")
            return self
        raise AssertionError(f"too many redirects from {url}")

    def forms(self) -> list[Form]:
        parser = _FormParser()
        parser.feed(self.html)
        return parser.forms

    def submit(self, index: int = 0, **overrides: str) -> FormFollower:
        """Submits form ``index`` as a browser would (pressing its first button), with fields overridden."""
        form = self.forms()[index]
        fields = [(k, overrides.pop(k, v)) for k, v in form.fields]
        fields += list(overrides.items())
        if form.buttons and form.buttons[0][1]:
            fields.append((form.buttons[0][1], form.buttons[0][2]))
        action = urljoin(self.url, form.action or self.url)
        body = urlencode(fields).encode()
        if form.method == "GET":
            return self.open(f"{action.split('?')[0]}?{body.decode()}")
        return self.open(action, data=body, method="POST")


def chromium_paths() -> tuple[str, str] | None:
    """(chromium, chromedriver) when both are installed."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Chromium:
    """Headless Debian chromium driven through chromedriver (W3C WebDriver over HTTP)."""

    ARGS = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
    ]  # fmt: skip

    def __init__(self, browser: str, driver: str) -> None:
        self.profile = tempfile.mkdtemp(prefix="cloud-runs-chromium-")
        self.port = _free_port()
        self.driver = subprocess.Popen(
            [driver, f"--port={self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                self._call("GET", "/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.close()
                    raise
                time.sleep(0.1)
        options = {"binary": browser, "args": [*self.ARGS, f"--user-data-dir={self.profile}"]}
        session = self._call(
            "POST", "/session", {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}}
        )
        self.session = session["sessionId"]

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as e:
            raise AssertionError(f"webdriver {method} {path}: {e.read()[:500]!r}") from None
        value = payload.get("value", payload)
        return value if isinstance(value, dict) else {"value": value, "sessionId": payload.get("sessionId")}

    def _session(self, method: str, path: str, body: dict | None = None) -> dict:
        return self._call(method, f"/session/{self.session}{path}", body)

    def get(self, url: str) -> None:
        self._session("POST", "/url", {"url": url})

    def click(self, css: str) -> None:
        element = self._session("POST", "/element", {"using": "css selector", "value": css})
        element_id = next(iter(element.values()))
        self._session("POST", f"/element/{element_id}/click", {})

    @property
    def current_url(self) -> str:
        return self._session("GET", "/url")["value"]

    @property
    def page_source(self) -> str:
        return self._session("GET", "/source")["value"]

    def wait_for(self, predicate, timeout: float = 30) -> None:  # noqa: ANN001
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out at {self.current_url}")
            time.sleep(0.1)

    def close(self) -> None:
        try:
            if getattr(self, "session", None):
                self._call("DELETE", f"/session/{self.session}")
        finally:
            self.driver.terminate()
            try:
                self.driver.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.driver.kill()
            shutil.rmtree(self.profile, ignore_errors=True)
