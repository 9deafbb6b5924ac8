"""``cloud-runs app create``: register the GitHub App from a manifest and configure it.

Serves one page on 127.0.0.1 whose form posts Cloud Runs' manifest to GitHub
(github.com, an Enterprise Server, or the local forge, from ``GITHUB_API_URL``).
GitHub sends the browser back with a one-time code; the code becomes the App's
credentials, which go into `.env` (existing values kept unless ``--force``) and
into the ``GitHubApp`` block. The private key and client secret are never printed.

Example:
    $ cloud-runs app create --name "Cloud Runs (acme)" --org acme --issues
    Open http://127.0.0.1:43817/ in a browser to create the App on https://github.com.
    ...
    Install it: https://github.com/apps/cloud-runs-acme/installations/new
"""

from __future__ import annotations

import argparse
import hmac
import html
import json
import secrets
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qs, urlencode, urlsplit

from cloud_runs.errors import CloudRunsError, ConfigurationError
from cloud_runs.setup.envfile import EnvUpdate, read_env_file, update_env_file
from cloud_runs.setup.manifest import (
    AppCredentials,
    build_manifest,
    exchange_code,
    install_url,
    new_app_url,
    web_url_for,
)

#: The variables that describe one App; replaced together or not at all.
APP_VARIABLES = ("GITHUB_APP_CLIENT_ID", "GITHUB_APP_ID", "GITHUB_APP_SLUG", "GITHUB_APP_PRIVATE_KEY")
DEFAULT_WAIT_SECONDS = 1800


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options of ``cloud-runs app create`` to ``parser``."""
    parser.add_argument("--name", default="Cloud Runs", help="App name; GitHub derives the slug from it and names are unique per host")
    parser.add_argument("--org", help="register the App for this organization (default: your personal account)")
    parser.add_argument("--public", action="store_true", help="let other accounts install the App (default: private)")
    parser.add_argument("--issues", action="store_true", help="also ask for issues: write and the issue events")
    parser.add_argument("--workflows", action="store_true", help="also ask for workflows: write (changes to .github/workflows/)")
    parser.add_argument("--url", default="https://github.com/apps", help="the App's homepage URL")
    parser.add_argument("--webhook-url", help="webhook receiver; without one the webhook is inactive")
    parser.add_argument("--api-url", help="REST API URL (default: GITHUB_API_URL, else https://api.github.com)")
    parser.add_argument("--env-file", default=".env", type=Path, help="the .env file to write (default: ./.env)")
    parser.add_argument("--force", action="store_true", help="replace App settings already present in the .env file and the block")
    parser.add_argument("--block-name", default="default", help="name of the GitHub App block to save (default: default)")
    parser.add_argument("--no-block", action="store_true", help="only write the .env file, do not save the Prefect block")
    parser.add_argument("--no-browser", action="store_true", help="print the local URL without opening a browser")
    parser.add_argument("--port", type=int, default=0, help="port of the local page on 127.0.0.1 (default: a free one)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_WAIT_SECONDS, help="seconds to wait for GitHub's redirect")


@dataclass
class AppCreateResult:
    """The outcome of a completed flow (no secrets)."""

    app: AppCredentials
    env: EnvUpdate
    block: str  # "saved", "kept" or "skipped"
    install_url: str


@dataclass
class _Flow:
    """State shared between the local page's handler and the waiting command."""

    api_url: str
    web_url: str
    form_action: str
    manifest: dict[str, Any]
    state: str = field(repr=False)
    complete: Callable[[AppCredentials], AppCreateResult]
    done: threading.Event = field(default_factory=threading.Event)
    result: AppCreateResult | None = None
    error: CloudRunsError | None = None


class _Handler(BaseHTTPRequestHandler):
    server: _LocalServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # the query string holds the code; keep it out of the terminal

    def do_GET(self) -> None:
        flow = self.server.flow
        split = urlsplit(self.path)
        if split.path == "/":
            self._page(200, "Create the Cloud Runs GitHub App", _form_page(flow))
        elif split.path == "/callback":
            self._callback(parse_qs(split.query))
        else:
            self._page(404, "Not found", "<p>Nothing here.</p>")

    def _callback(self, query: dict[str, list[str]]) -> None:
        flow = self.server.flow
        code, state = (query.get("code") or [""])[0], (query.get("state") or [""])[0]
        if not hmac.compare_digest(state.encode(), flow.state.encode()):
            # Someone else's redirect (or a forged one): do not spend a code we did not ask for.
            self._page(400, "State mismatch", "<p>This answer does not belong to the form this command served. Start again from the form.</p>")
            return
        if flow.done.is_set():
            self._page(409, "Already done", "<p>This App was already created; see the terminal.</p>")
            return
        if not code:
            self._page(400, "No code", "<p>GitHub sent no code. Start again from the form.</p>")
            return
        try:
            flow.result = flow.complete(exchange_code(flow.api_url, code))
        except CloudRunsError as e:
            flow.error = e
            self._page(502, "Could not finish", f"<p>{html.escape(e.message)}</p><p>{html.escape(e.hint or '')}</p>")
        else:
            result = flow.result
            link = html.escape(result.install_url)
            self._page(
                200,
                f"Created {result.app.name}",
                f"<p>The GitHub App <b>{html.escape(result.app.slug)}</b> (id {result.app.id}) is registered and "
                f"its settings are in {html.escape(str(result.env.path))}.</p>"
                f'<p>Next: <a id="install" href="{link}">install it on your repositories</a>. You can close this tab.</p>',
            )
        flow.done.set()

    def _page(self, status: int, title: str, content: str) -> None:
        body = f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title><h1>{html.escape(title)}</h1>{content}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)


class _LocalServer(ThreadingHTTPServer):
    daemon_threads = True
    flow: _Flow


def _form_page(flow: _Flow) -> str:
    manifest = html.escape(json.dumps(flow.manifest))
    permissions = ", ".join(f"{k}: {v}" for k, v in flow.manifest["default_permissions"].items())
    return (
        f"<p>This registers the GitHub App <b>{html.escape(flow.manifest['name'])}</b> on "
        f"{html.escape(flow.web_url)} with {html.escape(permissions)}. GitHub asks you to confirm.</p>"
        f'<form id="manifest-form" method="post" action="{html.escape(flow.form_action)}">'
        f'<input type="hidden" name="manifest" value="{manifest}">'
        f'<button type="submit" id="submit">Create GitHub App on {html.escape(flow.web_url)}</button>'
        "</form>"
    )


def existing_app_settings(env_file: Path) -> list[str]:
    """The App variables already set (non-empty) in ``env_file``."""
    values = read_env_file(env_file)
    return [name for name in APP_VARIABLES if values.get(name)]


def _resolve_api_url(args: argparse.Namespace) -> str:
    if args.api_url:
        return args.api_url.rstrip("/")
    from cloud_runs.settings import load_settings

    env_file = Path(args.env_file)
    settings = load_settings(env_file) if env_file.is_file() else load_settings()
    return settings.github_api_url


def save_block(credentials: AppCredentials, api_url: str, name: str, *, force: bool) -> str:
    """Saves the ``GitHubApp`` block; returns "saved", or "kept" when one exists and not ``force``."""
    from pydantic import SecretStr

    from blocks.github_app import GitHubApp

    block = GitHubApp(
        client_id=credentials.client_id,
        app_id=str(credentials.id),
        slug=credentials.slug,
        private_key=SecretStr(credentials.pem),
        api_url=api_url,
    )
    if not force:
        try:
            GitHubApp.load(name)
        except ValueError:
            pass  # no such document yet
        else:
            return "kept"
    block.save(name, overwrite=True)
    return "saved"


def run(
    args: argparse.Namespace,
    *,
    on_ready: Callable[[str], None] | None = None,
    out: TextIO | None = None,
) -> AppCreateResult:
    """Runs the flow: serve the form, wait for GitHub's redirect, write `.env` and the block.

    Args:
        args: Parsed options (see :func:`add_arguments`).
        on_ready: Called with the local page's URL once it serves (default: print it and open a browser).
        out: Where progress goes (default: stdout).

    Raises:
        ConfigurationError: The `.env` file already holds App settings (without ``--force``), checked
            before anything is served.
        ManifestExchangeError: GitHub did not trade the code.
        CloudRunsError: Nobody finished the flow within ``--timeout`` seconds.
    """
    out = out or sys.stdout
    env_file = Path(args.env_file)
    present = existing_app_settings(env_file)
    if present and not args.force:
        raise ConfigurationError(
            f"{env_file} already holds {', '.join(present)}; nothing was changed",
            hint="check that App with `cloud-runs doctor`, or pass --force to register a new App and replace them",
        )
    api_url = _resolve_api_url(args)
    web_url = web_url_for(api_url)
    state = secrets.token_urlsafe(32)
    server = _LocalServer(("127.0.0.1", args.port), _Handler)
    local_url = f"http://127.0.0.1:{server.server_address[1]}/"
    manifest = build_manifest(
        name=args.name,
        redirect_url=f"{local_url}callback",
        url=args.url,
        public=args.public,
        issues=args.issues,
        workflows=args.workflows,
        webhook_url=args.webhook_url,
    )

    def complete(credentials: AppCredentials) -> AppCreateResult:
        values = {
            "GITHUB_APP_CLIENT_ID": credentials.client_id,
            "GITHUB_APP_ID": str(credentials.id),
            "GITHUB_APP_SLUG": credentials.slug,
            "GITHUB_APP_PRIVATE_KEY": credentials.pem,
            "GITHUB_API_URL": api_url,
        }
        env = update_env_file(env_file, values, force=args.force)
        block = "skipped"
        if not args.no_block:
            try:
                block = save_block(credentials, api_url, args.block_name, force=args.force)
            except Exception as e:  # noqa: BLE001 - .env is written; say how to finish instead of losing the App
                print(f"could not save the GitHub App block {args.block_name!r}: {type(e).__name__}", file=out)
                block = "failed"
        return AppCreateResult(credentials, env, block, install_url(web_url, credentials.slug))

    server.flow = _Flow(
        api_url=api_url,
        web_url=web_url,
        form_action=new_app_url(web_url, args.org) + "?" + urlencode({"state": state}),
        manifest=manifest,
        state=state,
        complete=complete,
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="app-create", daemon=True)
    thread.start()
    try:
        if on_ready is not None:
            on_ready(local_url)
        else:
            print(f"Open {local_url} in a browser to create the App on {web_url}.", file=out, flush=True)
            if not args.no_browser:
                import webbrowser

                webbrowser.open(local_url)
        if not server.flow.done.wait(args.timeout):
            raise CloudRunsError(
                f"GitHub did not send the browser back within {args.timeout:.0f} s",
                hint=f"open {local_url} and confirm the App on {web_url}, or run the command again",
            )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    if server.flow.error is not None:
        raise server.flow.error
    assert server.flow.result is not None
    _report(server.flow.result, args, out)
    return server.flow.result


def _report(result: AppCreateResult, args: argparse.Namespace, out: TextIO) -> None:
    app = result.app
    print(f"Created GitHub App {app.name!r} (slug {app.slug}, id {app.id}, client id {app.client_id}).", file=out)
    if result.env.written:
        print(f"Wrote {', '.join(result.env.written)} to {result.env.path}.", file=out)
    if result.env.kept:
        print(f"Kept the existing {', '.join(result.env.kept)} in {result.env.path} (--force replaces them).", file=out)
    if result.block == "saved":
        print(f"Saved the GitHub App block {args.block_name!r}.", file=out)
    elif result.block == "kept":
        print(f"Kept the existing GitHub App block {args.block_name!r} (--force replaces it).", file=out)
    elif result.block == "failed":
        print("Save the block once the Prefect API answers: cloud-runs blocks init", file=out)
    print(f"Install it: {result.install_url}", file=out)
    print("Then check the set-up: cloud-runs doctor --repository OWNER/NAME", file=out)


def main(args: argparse.Namespace) -> int:
    """Entry point of ``cloud-runs app create``; returns the exit status."""
    run(args)
    return 0
