"""Authenticating as a GitHub App and minting repository-scoped installation tokens.

The App signs a short JWT with its private key; with it, it finds the
installation that covers a repository and asks for an installation token
scoped down to *that one repository* and *only the permissions a step needs*
(``{"contents": "read"}`` for the clone, ``{"contents": "write"}`` for the push,
``{"pull_requests": "write"}`` for the PR). PyGithub cannot scope tokens to
repositories, so the access-token request goes through PyGithub's requester
directly; everything else uses PyGithub's normal objects.

Tokens live one hour. :meth:`GitHubAppAuth.token` caches them per
(repository, permissions) and mints a fresh one when less than five minutes
remain, and clients from :meth:`GitHubAppAuth.client` fetch the token on every
request, so a run longer than an hour keeps working.

Example:
    >>> auth = GitHubAppAuth.from_settings(load_settings())  # doctest: +SKIP
    >>> token = auth.token("acme/widgets", {"contents": "read"})  # doctest: +SKIP
    >>> gh = auth.client("acme/widgets", {"pull_requests": "write"})  # doctest: +SKIP
    >>> auth.revoke_all()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from github import Auth

from cloud_runs.errors import ConfigurationError, InputError
from cloud_runs.github.errors import AppNotInstalledError, GitHubNotFoundError, GitHubPermissionError
from cloud_runs.github.keys import load_private_key
from cloud_runs.github.retry import RetryPolicy
from cloud_runs.redact import REDACTED, Redactor

if TYPE_CHECKING:
    import github

    from cloud_runs.settings import Settings

__all__ = [
    "GitHubAppAuth",
    "GitIdentity",
    "InstallationToken",
    "PUBLIC_API_URL",
    "validate_permissions",
    "validate_repository",
]

PUBLIC_API_URL = "https://api.github.com"
# Tokens live 60 minutes; replacing them with 5 left leaves room for a slow
# git push that started with the old one.
REFRESH_MARGIN_SECONDS = 300
# GitHub rejects JWTs that expire more than 10 minutes after issue; iat is
# back-dated 60 s against clock drift, so exp = now + 540 keeps exp - iat at 600.
JWT_BACKDATE_SECONDS = 60
JWT_LIFETIME_SECONDS = 540

# GitHub's rules: owner 1-39 alphanumerics or single hyphens; repository names
# of letters, digits, '.', '-', '_' (not "." or "..").
_OWNER = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")
_REPO = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_PERMISSION_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_PERMISSION_LEVELS = ("read", "write", "admin")

logger = logging.getLogger(__name__)

# Every token this process mints, so that PyGithub's DEBUG logging (which
# prints response bodies, access-token responses included) cannot leak one.
_log_redactor = Redactor()


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _log_redactor.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def _install_log_filter() -> None:
    for name in ("github.Requester", "github.GithubRetry", "urllib3.connectionpool"):
        target = logging.getLogger(name)
        if not any(isinstance(f, _RedactingFilter) for f in target.filters):
            target.addFilter(_RedactingFilter())


_install_log_filter()


def validate_repository(repository: str) -> tuple[str, str]:
    """Checks an ``owner/name`` repository string and splits it.

    Raises:
        InputError: The value is not ``owner/name`` with GitHub-valid parts.

    Example:
        >>> validate_repository("acme/widgets")
        ('acme', 'widgets')
    """
    parts = repository.split("/") if isinstance(repository, str) else []
    if len(parts) != 2 or not _OWNER.match(parts[0]) or not _REPO.match(parts[1]) or parts[1] in (".", ".."):
        raise InputError(
            f"repository {repository!r} is not a GitHub repository name",
            hint="write it as owner/name, e.g. acme/widgets (no URL, no .git suffix)",
        )
    name = parts[1]
    if name.endswith(".git"):
        raise InputError(
            f"repository {repository!r} ends in .git", hint=f"write it as {parts[0]}/{name.removesuffix('.git')}"
        )
    return parts[0], name


def validate_permissions(permissions: Mapping[str, str]) -> dict[str, str]:
    """Checks a permissions mapping such as ``{"contents": "write"}``.

    Raises:
        InputError: It is empty, or a name or level is not one GitHub uses.
    """
    if not permissions:
        raise InputError("no permissions requested", hint='ask for what the step needs, e.g. {"contents": "read"}')
    checked: dict[str, str] = {}
    for name, level in permissions.items():
        if not isinstance(name, str) or not _PERMISSION_NAME.match(name):
            raise InputError(f"{name!r} is not a GitHub App permission name", hint="use names like contents, pull_requests")
        if level not in _PERMISSION_LEVELS:
            raise InputError(
                f"permission {name} has level {level!r}", hint=f"use one of {', '.join(_PERMISSION_LEVELS)}"
            )
        checked[name] = level
    return dict(sorted(checked.items()))


def _describe_permissions(permissions: Mapping[str, str]) -> str:
    return ", ".join(f"{name}: {level}" for name, level in permissions.items())


@dataclass(frozen=True)
class GitIdentity:
    """A git author/committer identity."""

    name: str
    email: str


@dataclass(frozen=True)
class InstallationToken:
    """An installation access token scoped to one repository.

    The value is kept out of ``repr`` so that logging the object is safe.
    """

    value: str = field(repr=False)
    expires_at: datetime
    repository: str
    permissions: Mapping[str, str]

    def expires_in(self, now: float | datetime) -> float:
        """Seconds left before expiry at ``now`` (epoch seconds or an aware datetime)."""
        if isinstance(now, datetime):
            now = now.timestamp()
        return self.expires_at.timestamp() - now


class _AppJwtAuth(Auth.JWT):
    """PyGithub auth that signs a fresh App JWT for every request."""

    def __init__(self, owner: GitHubAppAuth) -> None:
        self._owner = owner

    @property
    def token(self) -> str:
        return self._owner.create_jwt()

    @property
    def _masked_token(self) -> str:
        return "Bearer (jwt removed)"


class _ScopedInstallationAuth(Auth.Auth):
    """PyGithub auth that always sends a valid token for one repository and permission set.

    Asking :meth:`GitHubAppAuth.token` on every request makes refresh free:
    the cached token is returned until it is close to expiry, then replaced.
    """

    def __init__(self, owner: GitHubAppAuth, repository: str, permissions: Mapping[str, str]) -> None:
        self._owner = owner
        self._repository = repository
        self._permissions = dict(permissions)

    @property
    def token_type(self) -> str:
        return "token"

    @property
    def token(self) -> str:
        return self._owner.token(self._repository, self._permissions).value

    @property
    def _masked_token(self) -> str:
        return "token (installation token removed)"


class GitHubAppAuth:
    """A GitHub App's credentials, and the tokens minted from them.

    Args:
        client_id: The App's Client ID (``Iv23...``), used as the JWT issuer.
        private_key: The App's private key (PEM text or a loaded key).
        app_id: The numeric App ID. When given it is the JWT issuer, which
            every GitHub version accepts (Enterprise Server 3.13 and older
            accept only the App ID).
        slug: The App's URL name; fetched from ``GET /app`` when not given.
        api_url: REST base URL (``https://HOST/api/v3`` for Enterprise Server).
        web_url: The web host for links; derived from ``api_url`` when not given.
        timeout: Seconds allowed for each HTTP request.
        clock: Epoch seconds; injectable so tests can run a two-hour run in a second.
        retry: Retry policy for REST calls.
        seconds_between_requests: PyGithub's pause between requests (None: no pause).
        seconds_between_writes: PyGithub's pause between writes (None: no pause).

    Example:
        >>> auth = GitHubAppAuth(client_id="Iv23li...", private_key=pem)  # doctest: +SKIP
        >>> auth.installation_id("acme/widgets")  # doctest: +SKIP
        12345
    """

    def __init__(
        self,
        *,
        client_id: str | None,
        private_key: str | RSAPrivateKey,
        app_id: str | int | None = None,
        slug: str | None = None,
        api_url: str = PUBLIC_API_URL,
        web_url: str | None = None,
        timeout: float = 30,
        clock: Callable[[], float] = time.time,
        retry: RetryPolicy | None = None,
        seconds_between_requests: float | None = 0.25,
        seconds_between_writes: float | None = 1.0,
    ) -> None:
        if not client_id and not app_id:
            raise ConfigurationError(
                "GITHUB_APP_CLIENT_ID is not set", hint="copy the Client ID from the App's settings page"
            )
        self.client_id = client_id or None
        self.app_id = str(app_id) if app_id else None
        self._key = private_key if isinstance(private_key, RSAPrivateKey) else load_private_key(private_key)
        self._slug = slug or None
        self.api_url = api_url.rstrip("/")
        self.web_url = (web_url or _web_url_for(self.api_url)).rstrip("/")
        self.timeout = timeout
        self.clock = clock
        self.retry = retry or RetryPolicy(clock=clock)
        self.seconds_between_requests = seconds_between_requests
        self.seconds_between_writes = seconds_between_writes
        self._lock = threading.RLock()
        self._installations: dict[str, int] = {}
        self._tokens: dict[tuple[str, tuple[tuple[str, str], ...]], InstallationToken] = {}
        self._issued: list[InstallationToken] = []
        self._app_info: dict[str, Any] | None = None
        self._identity: GitIdentity | None = None
        self._app_client: github.Github | None = None

    def __repr__(self) -> str:
        return f"GitHubAppAuth(issuer={self.issuer!r}, api_url={self.api_url!r})"

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> GitHubAppAuth:
        """Builds the auth from :class:`~cloud_runs.settings.Settings`.

        Raises:
            ConfigurationError: Naming every missing variable at once.
        """
        missing = []
        if not settings.github_app_client_id and not settings.github_app_id:
            missing.append("GITHUB_APP_CLIENT_ID (or GITHUB_APP_ID)")
        if not settings.github_app_private_key:
            missing.append("GITHUB_APP_PRIVATE_KEY")
        if missing:
            raise ConfigurationError(
                f"GitHub App settings missing: {', '.join(missing)}",
                hint="create a GitHub App (see README) and set these in .env or the environment",
            )
        return cls(
            client_id=settings.github_app_client_id or None,
            app_id=settings.github_app_id or None,
            private_key=load_private_key(settings.github_app_private_key, "GITHUB_APP_PRIVATE_KEY"),
            slug=settings.github_app_slug or None,
            api_url=settings.github_api_url,
            web_url=settings.github_web_url,
            **kwargs,
        )

    # -- App-level calls (JWT) ---------------------------------------------

    @property
    def issuer(self) -> str:
        """The JWT ``iss`` claim: the App ID when known, else the Client ID."""
        return self.app_id or self.client_id or ""

    def create_jwt(self) -> str:
        """Signs a JWT for App-level endpoints (valid for 10 minutes, back-dated 60 s)."""
        now = int(self.clock())
        claims = {"iat": now - JWT_BACKDATE_SECONDS, "exp": now + JWT_LIFETIME_SECONDS, "iss": self.issuer}
        return jwt.encode(claims, self._key, algorithm="RS256")

    def _github(self, auth: Auth.Auth | None) -> github.Github:
        import github

        # retry=0: our RetryPolicy retries whole idempotent operations (see retry.py).
        return github.Github(
            auth=auth,
            base_url=self.api_url,
            timeout=max(1, math.ceil(self.timeout)),  # PyGithub accepts whole seconds only
            retry=0,
            seconds_between_requests=self.seconds_between_requests,
            seconds_between_writes=self.seconds_between_writes,
        )

    def _app_github(self) -> github.Github:
        with self._lock:
            if self._app_client is None:
                self._app_client = self._github(_AppJwtAuth(self))
            return self._app_client

    def _request(self, verb: str, path: str, *, action: str, body: Any = None, permission: str | None = None) -> Any:
        requester = self._app_github().requester
        return self.retry.call(
            lambda: requester.requestJsonAndCheck(verb, path, input=body)[1], action=action, permission=permission
        )

    def app(self) -> dict[str, Any]:
        """``GET /app``: the App's own description (slug, name, permissions)."""
        if self._app_info is None:
            self._app_info = self._request("GET", "/app", action="read the GitHub App (GET /app)")
            self._slug = self._slug or self._app_info.get("slug")
        return dict(self._app_info)

    @property
    def slug(self) -> str:
        """The App's slug (URL name), fetched once when not configured."""
        if not self._slug:
            self.app()
        return self._slug or ""

    def install_url(self) -> str:
        """Where an owner installs the App."""
        return f"{self.web_url}/apps/{self.slug}/installations/new"

    def installation_id(self, repository: str) -> int:
        """The installation of this App that covers ``repository``.

        Raises:
            InputError: ``repository`` is not ``owner/name``.
            AppNotInstalledError: The App is not installed there (or the
                repository does not exist); names the install URL.
        """
        owner, name = validate_repository(repository)
        with self._lock:
            if repository in self._installations:
                return self._installations[repository]
        try:
            data = self._request(
                "GET", f"/repos/{owner}/{name}/installation", action=f"find the App's installation on {repository}"
            )
        except GitHubNotFoundError:
            try:
                install_url = self.install_url()
            except Exception:  # noqa: BLE001 - the link is a courtesy; the error below matters
                install_url = f"{self.web_url}/settings/installations"
            raise AppNotInstalledError(
                f"the GitHub App is not installed on {repository} (or the repository does not exist)",
                hint=f"install it on {repository} at {install_url}",
                status=404,
            ) from None
        installation = int(data["id"])
        with self._lock:
            self._installations[repository] = installation
        return installation

    # -- Installation tokens -----------------------------------------------

    def token(self, repository: str, permissions: Mapping[str, str]) -> InstallationToken:
        """An installation token for ``repository`` with exactly ``permissions``.

        Cached per (repository, permissions); replaced by a new one when less
        than five minutes remain.

        Raises:
            InputError: Bad repository name or permissions.
            AppNotInstalledError: The App is not installed on the repository.
            GitHubPermissionError: The App was not granted ``permissions``.
        """
        validate_repository(repository)
        wanted = validate_permissions(permissions)
        key = (repository, tuple(wanted.items()))
        with self._lock:
            cached = self._tokens.get(key)
            if cached is not None and cached.expires_in(self.clock()) > REFRESH_MARGIN_SECONDS:
                return cached
            token = self._mint(repository, wanted)
            self._tokens[key] = token
            self._issued.append(token)
            return token

    def _mint(self, repository: str, permissions: dict[str, str]) -> InstallationToken:
        installation = self.installation_id(repository)
        name = repository.split("/")[1]
        described = _describe_permissions(permissions)
        # Retried like any call: a lost answer leaves one unused token behind,
        # scoped like this one and expiring within the hour.
        try:
            data = self._request(
                "POST",
                f"/app/installations/{installation}/access_tokens",
                body={"repositories": [name], "permissions": permissions},
                action=f"mint a token for {repository} ({described})",
            )
        except GitHubPermissionError as exc:
            raise self._not_granted(repository, described) from exc
        except GitHubNotFoundError:
            # The installation went away (uninstalled since we looked it up).
            with self._lock:
                self._installations.pop(repository, None)
            raise AppNotInstalledError(
                f"the GitHub App's installation on {repository} no longer exists",
                hint=f"install it on {repository} at {self.install_url()}",
                status=404,
            ) from None
        except Exception as exc:
            # 422 "The permissions requested are not granted to this installation."
            if getattr(exc, "status", None) == 422 and "permission" in str(exc).lower():
                raise self._not_granted(repository, described) from exc
            raise
        value = data["token"]
        if _log_redactor.redact(value) != REDACTED:
            # Not shaped like a GitHub token (the pattern catches those): redact it literally.
            _log_redactor.add(value)
        expires_at = datetime.fromisoformat(str(data["expires_at"]).replace("Z", "+00:00"))
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=timezone.utc)
        granted = data.get("permissions") or permissions
        logger.debug("minted an installation token for %s (%s)", repository, described)
        return InstallationToken(value=value, expires_at=expires_at, repository=repository, permissions=dict(granted))

    def _not_granted(self, repository: str, described: str) -> GitHubPermissionError:
        return GitHubPermissionError(
            f"the GitHub App's installation on {repository} was not granted {described}",
            hint=f"add {described} to the App's permissions ({self.web_url}/settings/apps/{self._slug or '<slug>'}"
            "/permissions) and accept the change on the installation",
            permission=described,
        )

    def revoke(self, token: InstallationToken) -> None:
        """Revokes ``token`` (``DELETE /installation/token``); revoking twice is fine."""
        import github

        client = self._github(Auth.Token(token.value))

        def delete() -> None:
            try:
                client.requester.requestJsonAndCheck("DELETE", "/installation/token")
            except github.GithubException as exc:
                if exc.status != 401:  # 401: already revoked or expired, which is the goal
                    raise

        try:
            self.retry.call(delete, action=f"revoke a token for {token.repository}")
        finally:
            client.close()
        with self._lock:
            for key, cached in list(self._tokens.items()):
                if cached.value == token.value:
                    del self._tokens[key]
            self._issued = [issued for issued in self._issued if issued.value != token.value]

    def issued_tokens(self) -> list[InstallationToken]:
        """Every token minted and not yet revoked through :meth:`revoke_all` (for teardown and redaction)."""
        with self._lock:
            return list(self._issued)

    def revoke_all(self) -> None:
        """Revokes every unexpired token this object minted (the teardown step).

        Tries all of them even if one fails, then raises the first failure.
        """
        with self._lock:
            issued, self._issued = self._issued, []
        first: BaseException | None = None
        now = self.clock()
        for token in issued:
            if token.expires_in(now) <= 0:
                continue
            try:
                self.revoke(token)
            except Exception as exc:  # noqa: BLE001 - keep revoking the others
                first = first or exc
        if first is not None:
            raise first

    # -- Clients and identity ----------------------------------------------

    def client(self, repository: str, permissions: Mapping[str, str]) -> github.Github:
        """A PyGithub client acting with a scoped token that is refreshed as needed.

        Example:
            >>> gh = auth.client("acme/widgets", {"pull_requests": "write"})  # doctest: +SKIP
            >>> gh.get_repo("acme/widgets").get_pulls(state="open")  # doctest: +SKIP
        """
        validate_repository(repository)
        return self._github(_ScopedInstallationAuth(self, repository, validate_permissions(permissions)))

    def bot_identity(self, repository: str | None = None) -> GitIdentity:
        """The App's bot user as a git identity.

        ``<slug>[bot]`` with the ``<id>+<slug>[bot]@users.noreply.github.com``
        email GitHub links to the bot's profile.

        Args:
            repository: When given, the user lookup is made with a
                ``metadata: read`` token for it (needed on hosts that refuse
                anonymous API calls); otherwise it is anonymous.
        """
        if self._identity is not None:
            return self._identity
        login = f"{self.slug}[bot]"
        auth = _ScopedInstallationAuth(self, repository, {"metadata": "read"}) if repository else None
        client = self._github(auth)
        try:
            data = self.retry.call(
                lambda: client.requester.requestJsonAndCheck("GET", f"/users/{login}")[1],
                action=f"look up the App's bot user {login}",
            )
        finally:
            client.close()
        self._identity = GitIdentity(name=login, email=f"{data['id']}+{login}@users.noreply.github.com")
        return self._identity

    def close(self) -> None:
        """Closes HTTP connections (tokens stay valid; see :meth:`revoke_all`)."""
        if self._app_client is not None:
            self._app_client.close()
            self._app_client = None


def _web_url_for(api_url: str) -> str:
    if api_url.rstrip("/") == PUBLIC_API_URL:
        return "https://github.com"
    return api_url.rstrip("/").removesuffix("/api/v3")
