"""The App manifest Cloud Runs registers, and the exchange of GitHub's code for credentials.

GitHub's manifest flow: a form POSTs the manifest to ``<web>/settings/apps/new``
(or ``<web>/organizations/ORG/settings/apps/new``), the user confirms, GitHub
redirects to ``redirect_url?code=...&state=...``, and
``POST /app-manifests/{code}/conversions`` returns the App's id, slug, client
id, private key (PEM) and secrets. The code works once, within an hour.

Example:
    >>> manifest = build_manifest(name="Cloud Runs (acme)", redirect_url="http://127.0.0.1:8765/callback")
    >>> manifest["default_permissions"]["contents"]
    'write'
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from cloud_runs.errors import CloudRunsError, InputError
from cloud_runs.settings import PUBLIC_GITHUB_API_URL

#: What every run needs: clone and push, open pull requests, read the repository.
REQUIRED_PERMISSIONS = {"contents": "write", "pull_requests": "write", "metadata": "read"}
#: Optional: comment on and label issues (issue_watch, issue-driven runs).
ISSUES_PERMISSION = {"issues": "write"}
#: Optional: let agents change files under .github/workflows/.
WORKFLOWS_PERMISSION = {"workflows": "write"}
DEFAULT_HOMEPAGE = "https://github.com/apps"
CONVERSION_TIMEOUT_SECONDS = 30


class ManifestExchangeError(CloudRunsError):
    """GitHub did not trade the code for the App's credentials."""


@dataclass(frozen=True)
class AppCredentials:
    """What the conversion returned (secret fields hidden from ``repr``).

    Attributes:
        id: The App ID.
        slug: The App's URL name.
        name: Display name.
        client_id: Client ID (JWT issuer).
        pem: The App's private key.
        client_secret: OAuth client secret (Cloud Runs does not use it; never printed).
        webhook_secret: Webhook secret, when the manifest had a webhook.
        owner: Login of the account that owns the App.
        permissions: The permissions GitHub registered.
        html_url: The App's public page.
    """

    id: int
    slug: str
    name: str
    client_id: str
    pem: str = field(repr=False)
    client_secret: str = field(default="", repr=False)
    webhook_secret: str | None = field(default=None, repr=False)
    owner: str = ""
    permissions: dict[str, str] = field(default_factory=dict)
    html_url: str = ""


def web_url_for(api_url: str) -> str:
    """The web host that serves the manifest pages for an API URL.

    Example:
        >>> web_url_for("https://api.github.com")
        'https://github.com'
        >>> web_url_for("https://ghe.example.com/api/v3")
        'https://ghe.example.com'
    """
    url = api_url.rstrip("/")
    if url == PUBLIC_GITHUB_API_URL:
        return "https://github.com"
    if not url.endswith("/api/v3"):
        raise InputError(
            f"GITHUB_API_URL={api_url} is neither https://api.github.com nor an Enterprise Server URL ending in /api/v3",
            hint="set GITHUB_API_URL to https://api.github.com, https://HOST/api/v3, or the forge's api_url",
        )
    return url.removesuffix("/api/v3")


def new_app_url(web_url: str, org: str | None = None) -> str:
    """Where the manifest form posts: the personal account's or an organization's new-App page."""
    if org:
        return f"{web_url}/organizations/{quote(org, safe='')}/settings/apps/new"
    return f"{web_url}/settings/apps/new"


def install_url(web_url: str, slug: str) -> str:
    """Where an owner installs the App on their repositories."""
    return f"{web_url}/apps/{slug}/installations/new"


def build_manifest(
    *,
    name: str,
    redirect_url: str,
    url: str = DEFAULT_HOMEPAGE,
    public: bool = False,
    issues: bool = False,
    workflows: bool = False,
    webhook_url: str | None = None,
    description: str = "Runs coding agents in sandboxes and opens pull requests with their work.",
) -> dict[str, Any]:
    """The App manifest for Cloud Runs.

    Args:
        name: The App's name (GitHub derives the slug from it; names are unique on a host).
        redirect_url: Where GitHub sends the browser back with the code.
        url: The App's homepage (required by GitHub).
        public: Whether other accounts may install it.
        issues: Ask for issues write (issue-driven runs, comments) and the issue events.
        workflows: Ask for workflows write (agents may change .github/workflows/).
        webhook_url: A webhook receiver; without one the webhook is registered inactive.

    Example:
        >>> build_manifest(name="x", redirect_url="http://127.0.0.1:1/callback", issues=True)["default_events"]
        ['issues', 'issue_comment']
    """
    if not name.strip():
        raise InputError("the App name is empty", hint="pass --name, e.g. --name 'Cloud Runs (acme)'")
    permissions = dict(REQUIRED_PERMISSIONS)
    events: list[str] = []
    if issues:
        permissions.update(ISSUES_PERMISSION)
        events += ["issues", "issue_comment"]
    if workflows:
        permissions.update(WORKFLOWS_PERMISSION)
    return {
        "name": name.strip(),
        "url": url,
        "description": description,
        "public": public,
        # GitHub requires a hook url whenever hook_attributes is given; inactive means no deliveries.
        "hook_attributes": {"url": webhook_url or url, "active": bool(webhook_url)},
        "redirect_url": redirect_url,
        "default_permissions": permissions,
        "default_events": events,
    }


def exchange_code(api_url: str, code: str, *, timeout: float = CONVERSION_TIMEOUT_SECONDS) -> AppCredentials:
    """Trades the temporary code for the App's credentials (``POST /app-manifests/{code}/conversions``).

    Not retried: the code is single-use, so a second attempt after a lost answer would fail anyway.

    Raises:
        ManifestExchangeError: The code is unknown, spent or older than an hour, or GitHub did not answer.
    """
    url = f"{api_url.rstrip('/')}/app-manifests/{quote(code, safe='')}/conversions"
    request = urllib.request.Request(
        url,
        data=b"",
        method="POST",
        headers={"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = json.loads(response.read())
    except urllib.error.HTTPError as e:
        if e.code == 404:
            raise ManifestExchangeError(
                "GitHub does not know the code it redirected with (404): it was used already or is older than an hour",
                hint="run `cloud-runs app create` again and finish within the hour",
            ) from None
        raise ManifestExchangeError(
            f"GitHub refused to convert the manifest code (HTTP {e.code})", hint="run `cloud-runs app create` again"
        ) from None
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise ManifestExchangeError(
            f"could not reach {api_url} to convert the manifest code ({reason})",
            hint="check GITHUB_API_URL and the network, then run `cloud-runs app create` again",
        ) from None
    missing = [k for k in ("id", "slug", "client_id", "pem") if not data.get(k)]
    if missing:
        raise ManifestExchangeError(
            f"the conversion answer lacks {', '.join(missing)}", hint="check that GITHUB_API_URL points at GitHub"
        )
    return AppCredentials(
        id=int(data["id"]),
        slug=str(data["slug"]),
        name=str(data.get("name") or data["slug"]),
        client_id=str(data["client_id"]),
        pem=str(data["pem"]),
        client_secret=str(data.get("client_secret") or ""),
        webhook_secret=data.get("webhook_secret"),
        owner=str((data.get("owner") or {}).get("login") or ""),
        permissions=dict(data.get("permissions") or {}),
        html_url=str(data.get("html_url") or ""),
    )
