"""The forge: a local GitHub-compatible server (REST subset + git smart HTTP).

Real PyGithub and real git talk to it. It lays out URLs like GitHub Enterprise
Server: REST under ``<url>/api/v3``, git under ``<url>/<owner>/<repo>.git``,
web pages under ``<url>/...``.

Example:
    >>> with Forge() as forge:
    ...     app = forge.create_app(slug="cloud-runs-dev", owner="acme")
    ...     forge.create_repo("acme/widgets", files={"README.md": "# widgets\\n"})
    ...     installation_id = forge.install_app(app.id, owner="acme")
    ...     gh = github.Github(base_url=forge.api_url, auth=...)
"""

from __future__ import annotations

import re
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from cloud_runs.errors import InputError
from cloud_runs.forge import persist
from cloud_runs.forge.auth import TOKEN_LIFETIME, generate_key_pair, new_token
from cloud_runs.forge.gitrepo import BareRepo
from cloud_runs.forge.state import (
    LEVELS,
    FaultRule,
    ForgeApp,
    Installation,
    Issue,
    Label,
    Repository,
    RequestRecord,
    TokenRecord,
    User,
    token_digest,
)

FAULTS = ("502", "502_after", "secondary_rate_limit", "primary_rate_limit", "timeout", "delay")
DEFAULT_APP_PERMISSIONS = {"contents": "write", "pull_requests": "write", "issues": "write", "metadata": "read"}
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\[bot\])?$")


class Forge:
    """A GitHub-compatible server on 127.0.0.1 with its state under ``root``.

    Args:
        root: Directory for bare repositories (a temporary one, removed on stop, if None).

    Example:
        >>> forge = Forge().start()
        >>> forge.api_url
        'http://127.0.0.1:45123/api/v3'
        >>> forge.stop()
    """

    def __init__(self, root: Path | str | None = None) -> None:
        self._owns_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="cloud-runs-forge-")) if root is None else Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.repos_root = self.root / "repositories"
        self.repos_root.mkdir(exist_ok=True)
        self._lock = threading.RLock()
        self._offset = 0.0
        self._next_id = 1000
        self._users: dict[str, User] = {}
        self._apps: dict[int, ForgeApp] = {}
        self._installations: dict[int, Installation] = {}
        self._tokens: list[TokenRecord] = []
        self._token_index: dict[str, TokenRecord] = {}
        self._repos: dict[str, Repository] = {}
        self._requests: list[RequestRecord] = []
        self._faults: list[FaultRule] = []
        self._rate: dict[str, list[float]] = {}  # credential key -> [window start, used]
        self._manifest_codes: dict[str, Any] = {}  # App manifest flow: code -> PendingCode (not persisted)
        self._server: Any = None
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.host = "127.0.0.1"
        self.port = 0
        if not self._owns_root and persist.load(self):
            for repo in self._repos.values():
                self.git(repo).configure()  # refresh hooks and settings written by older versions

    def _new_id(self) -> int:
        with self._lock:
            self._next_id += 1
            return self._next_id

    def _next_id_value(self) -> int:
        return self._next_id

    def _set_next_id(self, value: int) -> None:
        self._next_id = value

    def _changed(self) -> None:
        """Persists the records after a change (only for a forge with a root of its own)."""
        if not self._owns_root:
            with self._lock:
                persist.save(self)

    # lifecycle ---------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> Forge:
        """Starts serving in a background thread; returns self."""
        from cloud_runs.forge.server import make_server

        if self._server is not None:
            return self
        self._stopped.clear()
        self._server = make_server(self, host, port)
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="forge", daemon=True
        )
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Blocks until :meth:`stop` is called (or ``timeout`` passes); Ctrl-C interrupts it.

        Returns:
            True if the forge stopped, False on timeout.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._stopped.is_set():
            left = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if left <= 0:
                return False
            self._stopped.wait(left)  # short waits keep KeyboardInterrupt responsive
        return True

    def stop(self) -> None:
        """Stops serving (and removes the temporary root, if the forge made one)."""
        self._stopped.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Forge:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base address, e.g. ``http://127.0.0.1:PORT`` (web pages and git)."""
        if not self.port:
            raise RuntimeError("the forge is not started; call start() first")
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """REST base address, ``<url>/api/v3`` as on GitHub Enterprise Server."""
        return f"{self.url}/api/v3"

    # clock -------------------------------------------------------------------
    def now(self) -> float:
        """The forge's clock: ``time.time()`` plus whatever :meth:`advance_clock` added."""
        return time.time() + self._offset

    def advance_clock(self, seconds: float) -> None:
        """Moves the forge's clock forward (expires tokens and JWTs without waiting)."""
        if seconds < 0:
            raise InputError(f"advance_clock({seconds}) would move the clock back", hint="pass seconds >= 0")
        with self._lock:
            self._offset += seconds

    # users -------------------------------------------------------------------
    def create_user(self, login: str, type: str = "User") -> int:
        """Creates a user (``type`` "User", "Organization" or "Bot"); returns its id. Idempotent."""
        if not _LOGIN.match(login):
            raise InputError(f"invalid login {login!r}", hint="use letters, digits and single hyphens")
        if type not in ("User", "Organization", "Bot"):
            raise InputError(f"invalid user type {type!r}", hint='use "User", "Organization" or "Bot"')
        with self._lock:
            existing = self._users.get(login.lower())
            if existing:
                return existing.id
            user = User(self._new_id(), login, type, self.now())
            self._users[login.lower()] = user
            self._changed()
            return user.id

    def _user(self, login: str) -> User | None:
        return self._users.get(login.lower())

    def _ensure_user(self, login: str, type: str = "User") -> User:
        self.create_user(login, type)
        return self._users[login.lower()]

    # apps --------------------------------------------------------------------
    def create_app(
        self,
        slug: str = "cloud-runs-dev",
        name: str = "Cloud Runs Dev",
        permissions: dict[str, str] | None = None,
        owner: str = "acme",
        events: list[str] | None = None,
    ) -> ForgeApp:
        """Registers a GitHub App (and its ``<slug>[bot]`` user) with a fresh RSA key."""
        permissions = dict(DEFAULT_APP_PERMISSIONS if permissions is None else permissions)
        permissions.setdefault("metadata", "read")
        for key, level in permissions.items():
            if level not in ("read", "write", "admin"):
                raise InputError(f"permission {key}={level!r} is not a level", hint='use "read", "write" or "admin"')
        private, public = generate_key_pair()
        with self._lock:
            if any(a.slug == slug for a in self._apps.values()):
                raise InputError(f"an app with slug {slug!r} exists", hint="pick another slug")
            self._ensure_user(owner, "Organization")
            bot = self._ensure_user(f"{slug}[bot]", "Bot")
            app_id = self._new_id()
            app = ForgeApp(
                id=app_id,
                client_id="Iv23li" + secrets.token_hex(7),
                slug=slug,
                name=name,
                private_key_pem=private,
                bot_user_id=bot.id,
                permissions=permissions,
                owner=owner,
                public_key_pem=public,
                created_at=self.now(),
                events=list(events or []),
            )
            self._apps[app_id] = app
            self._changed()
            return app

    def _app_by_issuer(self, issuer: str) -> ForgeApp | None:
        with self._lock:
            for app in self._apps.values():
                if issuer in (app.client_id, str(app.id)):
                    return app
        return None

    def _app_of_installation(self, installation_id: int) -> ForgeApp | None:
        inst = self._installations.get(installation_id)
        return self._apps.get(inst.app_id) if inst else None

    def install_app(
        self,
        app_id: int,
        owner: str,
        repositories: list[str] | None = None,
        permissions: dict[str, str] | None = None,
    ) -> int:
        """Installs an App on ``owner`` for ``repositories`` (None: all); returns the installation id."""
        with self._lock:
            app = self._apps.get(app_id)
            if app is None:
                raise InputError(f"no app with id {app_id}", hint="create it with forge.create_app()")
            account = self._ensure_user(owner, "Organization")
            names = None
            if repositories is not None:
                names = []
                for name in repositories:
                    repo = self._repo(f"{account.login}/{name}")
                    if repo is None:
                        raise InputError(f"no repository {owner}/{name}", hint="create it with forge.create_repo()")
                    names.append(repo.name)
            granted = dict(app.permissions if permissions is None else permissions)
            for key, level in granted.items():
                if LEVELS.get(level, 0) > LEVELS.get(app.permissions.get(key, "none"), 0):
                    raise InputError(f"{key}={level} exceeds the app's permissions", hint="grant it to the app first")
            inst = Installation(self._new_id(), app_id, account.login, names, granted, self.now())
            self._installations[inst.id] = inst
            self._changed()
            return inst.id

    def _installation_for(self, app: ForgeApp, repo: Repository) -> Installation | None:
        for inst in self._installations.values():
            if inst.app_id == app.id and inst.owner.lower() == repo.owner.lower():
                if inst.repositories is None or repo.name in inst.repositories:
                    return inst
        return None

    # tokens ------------------------------------------------------------------
    def _mint_token(
        self, inst: Installation, repositories: list[str] | None, permissions: dict[str, str]
    ) -> tuple[str, TokenRecord]:
        token = new_token()
        now = self.now()
        record = TokenRecord(
            id=len(self._tokens) + 1,
            installation_id=inst.id,
            repositories=repositories,
            permissions=permissions,
            created_at=now,
            expires_at=now + TOKEN_LIFETIME,
            digest=token_digest(token),
        )
        self._tokens.append(record)
        self._token_index[record.digest] = record  # saved by the REST handler, like every write
        return token, record

    def _token_by_digest(self, digest: str) -> TokenRecord | None:
        return self._token_index.get(digest)

    @property
    def tokens(self) -> list[TokenRecord]:
        """Records of every installation token issued (scope, expiry, revocation; never the string)."""
        with self._lock:
            return list(self._tokens)

    def token_repositories(self, record: TokenRecord) -> list[str]:
        """Names of the repositories a token can reach right now."""
        inst = self._installations[record.installation_id]
        names = inst.repositories
        if names is None:
            names = [r.name for r in self._repos.values() if r.owner.lower() == inst.owner.lower()]
        if record.repositories is not None:
            names = [n for n in names if n in record.repositories]
        return names

    def token_reaches(self, record: TokenRecord, repo: Repository) -> bool:
        inst = self._installations.get(record.installation_id)
        if inst is None or inst.owner.lower() != repo.owner.lower():
            return False
        return repo.name in self.token_repositories(record)

    # repositories ------------------------------------------------------------
    def create_repo(
        self,
        full_name: str,
        files: dict[str, str | bytes] | None = None,
        default_branch: str = "main",
        private: bool = True,
        description: str = "",
    ) -> Repository:
        """Creates a bare git repository with one initial commit holding ``files``."""
        owner, _, name = full_name.partition("/")
        if not owner or not name or not _NAME.match(name) or not _LOGIN.match(owner):
            raise InputError(f"invalid repository name {full_name!r}", hint='use "owner/name"')
        files = files if files else {"README.md": f"# {name}\n"}
        with self._lock:
            if self._repo(full_name) is not None:
                raise InputError(f"repository {full_name} exists", hint="pick another name")
            if self._repo_path(owner, name).exists():
                raise InputError(
                    f"{self._repo_path(owner, name)} exists but the forge has no record of it",
                    hint=f"remove it, or start the forge on the root that made it ({persist.STATE_FILE} is missing)",
                )
            account = self._user(owner) or self._ensure_user(owner, "Organization")
            now = self.now()
            BareRepo.create(
                self._repo_path(account.login, name),
                files,
                branch=default_branch,
                author=(account.login, f"{account.id}+{account.login}@users.noreply.github.com"),
                timestamp=int(now),
            )
            repo = Repository(self._new_id(), account.login, name, private, default_branch, description, now, now)
            self._repos[repo.full_name.lower()] = repo
            self._changed()
            return repo

    def _repo_path(self, owner: str, name: str) -> Path:
        return self.repos_root / owner / f"{name}.git"

    def repo_path(self, full_name: str) -> Path:
        """Path of the bare repository behind ``owner/name``."""
        repo = self._require_repo(full_name)
        return self._repo_path(repo.owner, repo.name)

    def _repo(self, full_name: str) -> Repository | None:
        return self._repos.get(full_name.lower())

    def _require_repo(self, full_name: str) -> Repository:
        repo = self._repo(full_name)
        if repo is None:
            raise InputError(f"no repository {full_name} on the forge", hint="create it with forge.create_repo()")
        return repo

    def git(self, repo: Repository) -> BareRepo:
        return BareRepo(self._repo_path(repo.owner, repo.name))

    def add_collaborator(self, full_name: str, login: str, permission: str = "write") -> None:
        """Gives ``login`` ``permission`` ("read", "triage", "write", "maintain", "admin") on a repository."""
        if permission not in ("read", "triage", "write", "maintain", "admin"):
            raise InputError(f"invalid permission {permission!r}", hint='use "read", "write" or "admin"')
        with self._lock:
            repo = self._require_repo(full_name)
            user = self._ensure_user(login)
            repo.collaborators[user.login.lower()] = permission
            self._changed()

    def permission_of(self, repo: Repository, login: str) -> str:
        """A user's permission on a repository: admin, maintain, write, triage, read or none."""
        if login.lower() == repo.owner.lower():
            return "admin"
        granted = repo.collaborators.get(login.lower())
        if granted:
            return granted
        return "none" if repo.private else "read"

    def association(self, repo: Repository, login: str) -> str:
        """``author_association`` of ``login`` on ``repo``, as GitHub derives it."""
        if login.lower() == repo.owner.lower():
            return "OWNER"
        if login.lower() in repo.collaborators:
            return "COLLABORATOR"
        if any(i.is_pull and i.user.lower() == login.lower() and i.closed_at for i in repo.issues.values()):
            return "CONTRIBUTOR"
        return "NONE"

    def _after_push(self, repo: Repository) -> None:
        """Keeps pull request heads in step with their branches after a push."""
        branches = self.git(repo).branches()
        with self._lock:
            repo.pushed_at = self.now()
            for issue in repo.issues.values():
                if issue.is_pull and issue.head_ref in branches and branches[issue.head_ref] != issue.head_sha:
                    issue.head_sha = branches[issue.head_ref]
                    issue.updated_at = self.now()
            self._changed()

    # issues & pulls (Python API) ---------------------------------------------
    def _ensure_label(self, repo: Repository, name: str) -> Label:
        label = repo.labels.get(name.lower())
        if label is None:
            label = Label(self._new_id(), name, "ededed")
            repo.labels[name.lower()] = label
        return label

    def create_issue(
        self, full_name: str, title: str, body: str = "", user: str = "octocat", labels: list[str] | None = None
    ) -> int:
        """Opens an issue as ``user``; returns its number."""
        with self._lock:
            repo = self._require_repo(full_name)
            author = self._ensure_user(user)
            now = self.now()
            issue = Issue(self._new_id(), repo.next_number, title, body, author.login, now, now)
            for name in labels or []:
                label = self._ensure_label(repo, name)
                if label.name not in issue.labels:
                    issue.labels.append(label.name)
            repo.issues[issue.number] = issue
            repo.next_number += 1
            self._changed()
            return issue.number

    def pulls(self, full_name: str) -> list[dict[str, Any]]:
        """Every pull request of a repository as plain dicts (for assertions)."""
        with self._lock:
            repo = self._require_repo(full_name)
            return [
                {
                    "number": i.number,
                    "head": i.head_ref,
                    "head_sha": i.head_sha,
                    "base": i.base_ref,
                    "title": i.title,
                    "body": i.body,
                    "draft": i.draft,
                    "state": i.state,
                    "user": i.user,
                    "labels": list(i.labels),
                    "requested_reviewers": list(i.requested_reviewers),
                }
                for i in sorted(repo.issues.values(), key=lambda i: i.number)
                if i.is_pull
            ]

    def issue_comments(self, full_name: str, number: int) -> list[dict[str, Any]]:
        """Comments on an issue or pull request as plain dicts (for assertions)."""
        with self._lock:
            repo = self._require_repo(full_name)
            issue = repo.issues.get(number)
            if issue is None:
                raise InputError(f"no issue #{number} in {full_name}", hint="check the number")
            return [{"id": c.id, "user": c.user, "body": c.body, "created_at": c.created_at} for c in issue.comments]

    def issue_labels(self, full_name: str, number: int) -> list[str]:
        """Label names on an issue or pull request."""
        with self._lock:
            return list(self._require_repo(full_name).issues[number].labels)

    # observation & faults ----------------------------------------------------
    @property
    def requests(self) -> list[RequestRecord]:
        """Every request answered so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self._requests.append(record)

    def inject(self, method: str, path_pattern: str, fault: str, count: int = 1, seconds: float = 0.0) -> None:
        """Makes the next ``count`` requests matching ``method`` and ``path_pattern`` fail.

        Args:
            method: HTTP method, or "*" for any.
            path_pattern: Regular expression searched in the request path (no query string),
                e.g. ``r"/api/v3/repos/[^/]+/[^/]+/pulls$"``; git paths match too.
            fault: "502"; "502_after" (the request is handled, then its answer is replaced by a 502, as
                when a proxy loses the upstream's answer); "secondary_rate_limit" (403, ``retry-after``: ``seconds`` rounded up, at least 1);
                "primary_rate_limit" (403, ``x-ratelimit-remaining: 0``, reset ``seconds`` ahead, at least 1);
                "timeout" or "delay" (sleep ``seconds``, then answer normally).
            count: How many matching requests fail.
            seconds: See ``fault``.
        """
        if fault not in FAULTS:
            raise InputError(f"unknown fault {fault!r}", hint=f"use one of {', '.join(FAULTS)}")
        try:
            pattern = re.compile(path_pattern)
        except re.error as e:
            raise InputError(f"path_pattern {path_pattern!r} is not a regular expression: {e}", hint="fix the regex") from e
        with self._lock:
            self._faults.append(FaultRule(method.upper(), pattern, fault, count, seconds))

    def _take_fault(self, method: str, path: str) -> FaultRule | None:
        with self._lock:
            for rule in self._faults:
                if rule.remaining > 0 and rule.method in ("*", method) and rule.pattern.search(path):
                    rule.remaining -= 1
                    return rule
        return None

    def _rate_limit(self, key: str, limit: int) -> tuple[int, int, int]:
        """Counts one request for ``key``; returns (used, remaining, reset)."""
        with self._lock:
            now = self.now()
            window = self._rate.get(key)
            if window is None or now >= window[0] + 3600:
                window = self._rate[key] = [now, 0]
            window[1] += 1
            used = int(window[1])
            return used, max(limit - used, 0), int(window[0] + 3600)
