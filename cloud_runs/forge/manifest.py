"""GitHub's App manifest flow on the forge: the web pages and the code exchange.

The flow, as on GitHub:

1. A page elsewhere POSTs a form with a JSON ``manifest`` to ``/settings/apps/new``
   (personal account) or ``/organizations/{org}/settings/apps/new``, optionally with
   ``?state=...``.
2. The forge validates the manifest and shows a confirmation page whose form the
   user submits (on GitHub: the "Create GitHub App" button; the name is editable).
3. The forge registers the App and redirects to the manifest's ``redirect_url``
   with ``?code=...&state=...``.
4. ``POST /api/v3/app-manifests/{code}/conversions`` (no authentication) trades the
   code, once and within an hour, for the App's id, slug, client id and secret,
   webhook secret and private key.

The forge has no sign-in; the personal account is :data:`WEB_USER`.

Example:
    >>> # <form method="post" action="{forge.url}/settings/apps/new?state=abc">
    >>> #   <input type="hidden" name="manifest" value='{"url": "https://example.com", ...}'>
"""

from __future__ import annotations

import html
import json
import re
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

if TYPE_CHECKING:
    from cloud_runs.forge.forge import Forge

#: The signed-in user of the forge's web pages (the forge has no sign-in).
WEB_USER = "octocat"
#: Codes trade for credentials within this many seconds (forge clock).
CODE_LIFETIME = 3600
MANIFEST_KEYS = {
    "name", "url", "hook_attributes", "redirect_url", "callback_urls", "setup_url", "description", "public",
    "default_events", "default_permissions", "request_oauth_on_install", "setup_on_update",
}  # fmt: skip
#: Webhook events the forge knows, with the permissions (any one of them) each needs.
EVENT_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "issues": ("issues",),
    "issue_comment": ("issues", "pull_requests"),
    "label": ("metadata",),
    "pull_request": ("pull_requests",),
    "pull_request_review": ("pull_requests",),
    "pull_request_review_comment": ("pull_requests",),
    "push": ("contents",),
    "create": ("contents",),
    "delete": ("contents",),
    "release": ("contents",),
    "repository": ("metadata",),
    "star": ("metadata",),
    "workflow_run": ("actions",),
    "workflow_job": ("actions",),
    "check_run": ("checks",),
    "check_suite": ("checks",),
    "status": ("statuses",),
}
_PAGE = re.compile(r"^(?:/organizations/(?P<org>[^/]+))?/settings/apps(?P<new>/new)?/?$")


@dataclass
class PendingCode:
    """A code handed to ``redirect_url``, not yet converted."""

    app_id: int
    expires_at: float
    webhook_secret: str | None = field(default=None, repr=False)


class ManifestError(Exception):
    """The manifest is not acceptable; the message is what GitHub would show."""


def is_manifest_path(path: str) -> bool:
    """True for the manifest pages (``/settings/apps/new`` and the confirmation target)."""
    return _PAGE.match(path) is not None


def slug_for(name: str) -> str:
    """GitHub's slug of an App name: lower case, runs of other characters become one hyphen."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def validate_manifest(raw: str, known_permissions: set[str]) -> dict[str, Any]:
    """Parses and checks a manifest the way GitHub does before showing the confirmation page.

    Raises:
        ManifestError: Not JSON, not an object, ``url`` missing, an unknown key,
            permission or event, or an event the permissions do not allow.
    """
    try:
        manifest = json.loads(raw)
    except ValueError:
        raise ManifestError("The manifest is not valid JSON.") from None
    if not isinstance(manifest, dict):
        raise ManifestError("The manifest must be a JSON object.")
    unknown = sorted(set(manifest) - MANIFEST_KEYS)
    if unknown:
        raise ManifestError(f"Unknown manifest attribute: {', '.join(unknown)}.")
    if not _is_url(manifest.get("url")):
        raise ManifestError("Url can't be blank: the manifest needs the App's homepage as url.")
    for key in ("redirect_url", "setup_url"):
        if key in manifest and not _is_url(manifest[key]):
            raise ManifestError(f"{key} must be a full http(s) URL.")
    hook = manifest.get("hook_attributes")
    if hook is not None:
        if not isinstance(hook, dict) or not _is_url(hook.get("url")):
            raise ManifestError("Hook url can't be blank: hook_attributes needs a url.")
        if "active" in hook and not isinstance(hook["active"], bool):
            raise ManifestError("hook_attributes.active must be true or false.")
    if "public" in manifest and not isinstance(manifest["public"], bool):
        raise ManifestError("public must be true or false.")
    permissions = manifest.get("default_permissions", {})
    if not isinstance(permissions, dict):
        raise ManifestError("default_permissions must be an object of permission names and levels.")
    for name, level in permissions.items():
        if name not in known_permissions:
            raise ManifestError(f"Default permissions: {name} is not a valid permission.")
        if level not in ("read", "write", "admin"):
            raise ManifestError(f"Default permissions: {name}={level!r} is not a valid access level.")
    events = manifest.get("default_events", [])
    if not isinstance(events, list):
        raise ManifestError("default_events must be a list of event names.")
    granted = {**permissions, "metadata": permissions.get("metadata", "read")}
    for event in events:
        needs = EVENT_PERMISSIONS.get(event)
        if needs is None:
            raise ManifestError(f"Default events: {event} is not a valid event.")
        if not any(name in granted for name in needs):
            raise ManifestError(f"Default events unsupported: {event} needs the {' or '.join(needs)} permission.")
    if "name" in manifest and not isinstance(manifest["name"], str):
        raise ManifestError("name must be a string.")
    return manifest


def _is_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` added to its query string."""
    parts = urlsplit(url)
    query = parse_qs(parts.query, keep_blank_values=True)
    pairs = [(k, v) for k, values in query.items() for v in values if k not in params]
    pairs += [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(pairs), ""))


class ManifestPages:
    """The manifest pages of one forge; the server hands requests to :meth:`serve`."""

    def __init__(self, forge: Forge) -> None:
        self.forge = forge
        self._form_tokens: dict[str, float] = {}  # authenticity token -> expiry (forge clock)

    def serve(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """Answers a request on a manifest path: (status, headers, body)."""
        match = _PAGE.match(path)
        assert match is not None
        org = match.group("org")
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True) if method == "POST" else {}

        def value(name: str) -> str:
            return (form.get(name) or query.get(name) or [""])[0]

        owner = self._owner(org)
        if owner is None:
            return _page(404, "404", "<p>This organization does not exist, or you are not one of its owners.</p>")
        prefix = f"/organizations/{owner}" if org else ""
        if match.group("new"):
            if method not in ("GET", "POST"):
                return _page(405, "Method not allowed", "")
            if not value("manifest"):
                return _page(200, "Register new GitHub App", "<p>Fill in the App's settings (not offered by the forge; post a manifest).</p>")
            return self._confirm_page(prefix, owner, value("manifest"), value("state"))
        if method != "POST":
            return _page(405, "Method not allowed", "")
        return self._create(owner, value("manifest"), value("state"), value("name"), value("authenticity_token"))

    def _owner(self, org: str | None) -> str | None:
        if org is None:
            self.forge.create_user(WEB_USER, "User")
            return WEB_USER
        user = self.forge._user(org)
        return user.login if user is not None and user.type == "Organization" else None

    def _known_permissions(self) -> set[str]:
        from cloud_runs.forge.rest import PERMISSION_NAMES

        return set(PERMISSION_NAMES)

    def _confirm_page(self, prefix: str, owner: str, raw: str, state: str) -> tuple[int, list[tuple[str, str]], bytes]:
        try:
            manifest = validate_manifest(raw, self._known_permissions())
        except ManifestError as e:
            return _page(422, "Invalid GitHub App manifest", f'<p class="flash-error">{html.escape(str(e))}</p>')
        token = secrets.token_urlsafe(24)
        with self.forge._lock:
            self._form_tokens[token] = self.forge.now() + CODE_LIFETIME
        permissions = manifest.get("default_permissions", {})
        rows = "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in sorted(permissions.items()))
        events = ", ".join(html.escape(e) for e in manifest.get("default_events", [])) or "none"
        content = (
            f"<p>Owner: <b>{html.escape(owner)}</b></p>"
            f'<form method="post" action="{html.escape(prefix)}/settings/apps">'
            f'<input type="hidden" name="authenticity_token" value="{html.escape(token)}">'
            f'<input type="hidden" name="manifest" value="{html.escape(raw)}">'
            f'<input type="hidden" name="state" value="{html.escape(state)}">'
            f'<label>GitHub App name <input type="text" name="name" value="{html.escape(manifest.get("name", ""))}"></label>'
            f"<p>Permissions</p><ul>{rows}<li>metadata: read</li></ul><p>Events: {events}</p>"
            f'<button type="submit" id="create-app">Create GitHub App for {html.escape(owner)}</button>'
            "</form>"
        )
        return _page(200, "Create GitHub App", content)

    def _create(self, owner: str, raw: str, state: str, name: str, token: str) -> tuple[int, list[tuple[str, str]], bytes]:
        forge = self.forge
        with forge._lock:
            expiry = self._form_tokens.pop(token, None)
        if expiry is None or expiry <= forge.now():
            return _page(422, "422", "<p>The form has expired or was already submitted. Start again from your app.</p>")
        try:
            manifest = validate_manifest(raw, self._known_permissions())
        except ManifestError as e:
            return _page(422, "Invalid GitHub App manifest", f'<p class="flash-error">{html.escape(str(e))}</p>')
        name = (name or manifest.get("name") or "").strip()
        slug = slug_for(name)
        if not slug:
            return _page(422, "Create GitHub App", '<p class="flash-error">Name can\'t be blank.</p>')
        with forge._lock:
            if any(a.slug == slug or a.name.lower() == name.lower() for a in forge._apps.values()):
                return _page(422, "Create GitHub App", f'<p class="flash-error">Name {html.escape(name)!s} is already in use.</p>')
            permissions = dict(manifest.get("default_permissions", {}))
            app = forge.create_app(
                slug=slug, name=name, permissions=permissions, owner=owner, events=list(manifest.get("default_events", []))
            )
            hook = manifest.get("hook_attributes")
            code = secrets.token_hex(20)
            codes: dict[str, PendingCode] = forge._manifest_codes
            codes[code] = PendingCode(
                app.id, forge.now() + CODE_LIFETIME, secrets.token_hex(20) if hook else None
            )
        redirect = manifest.get("redirect_url")
        if not redirect:
            return _page(201, app.name, f"<p>Created GitHub App {html.escape(app.slug)} (id {app.id}).</p>")
        location = with_query(redirect, code=code, state=state or None)
        return 302, [("Location", location), ("Content-Type", "text/html; charset=utf-8")], b"<p>Redirecting</p>\n"


def convert(forge: Forge, code: str) -> dict[str, Any] | None:
    """Trades a code for the App's credentials (once, within the hour); None when unknown or spent.

    Caller holds the forge's lock.
    """
    codes: dict[str, PendingCode] = forge._manifest_codes
    pending = codes.pop(code, None)
    if pending is None or pending.expires_at <= forge.now():
        return None
    app = forge._apps[pending.app_id]
    from cloud_runs.forge.payloads import Payloads

    installations = sum(1 for i in forge._installations.values() if i.app_id == app.id)
    body = Payloads(forge.url, forge.api_url).integration(app, forge._user(app.owner), installations)
    body.update(
        client_id=app.client_id,
        client_secret=secrets.token_hex(20),
        webhook_secret=pending.webhook_secret,
        pem=app.private_key_pem,
    )
    return body


def _page(status: int, title: str, content: str) -> tuple[int, list[tuple[str, str]], bytes]:
    page = f"<!doctype html><title>{html.escape(title)}</title><h1>{html.escape(title)}</h1>{content}\n"
    return status, [("Content-Type", "text/html; charset=utf-8")], page.encode()
