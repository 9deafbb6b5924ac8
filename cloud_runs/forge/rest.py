"""The REST API subset under ``/api/v3``, with GitHub's status codes and messages.

Each handler checks what GitHub checks for that endpoint: who may call it
(JWT or installation token), which repositories a token reaches (others are a
404, like on GitHub), and which permission it needs (else 403 "Resource not
accessible by integration").
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlencode

from cloud_runs.forge.auth import Caller
from cloud_runs.forge.payloads import DOCS, Payloads, error
from cloud_runs.forge.state import LEVELS, Issue, Repository, grants

if TYPE_CHECKING:
    from cloud_runs.forge.forge import Forge

NOT_ACCESSIBLE = "Resource not accessible by integration"
PERMISSION_NAMES = {
    "actions", "administration", "checks", "contents", "deployments", "environments", "issues", "metadata",
    "packages", "pages", "pull_requests", "repository_hooks", "repository_projects", "secret_scanning_alerts",
    "secrets", "security_events", "single_file", "statuses", "vulnerability_alerts", "workflows", "members",
    "organization_administration",
}  # fmt: skip


@dataclass
class Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class ApiError(Exception):
    """An error response; raised anywhere in a handler."""

    def __init__(self, status: int, message: str, errors: list[dict[str, Any]] | None = None, docs: str = DOCS):
        super().__init__(message)
        self.response = Response(status, error(message, docs, errors))


def not_found() -> ApiError:
    return ApiError(404, "Not Found")


def validation_failed(*errors: dict[str, Any]) -> ApiError:
    return ApiError(422, "Validation Failed", list(errors))


_ROUTES: list[tuple[str, re.Pattern[str], str]] = []


def route(method: str, pattern: str) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Registers a handler for ``method`` on paths (below /api/v3) matching ``pattern``."""
    seg = "[^/]+"
    regex = re.compile("^" + pattern.replace("{", "(?P<").replace("}", f">{seg})") + "$")

    def register(handler: Callable[..., Response]) -> Callable[..., Response]:
        _ROUTES.append((method, regex, handler.__name__))
        return handler

    return register


def _ref_route(method: str, pattern: str, name: str = "ref") -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Like :func:`route` but the last ``{<name>}`` may contain slashes (refs and branch names do)."""
    tail = "{" + name + "}"
    regex = re.compile("^" + pattern.replace(tail, f"(?P<{name}>.+)").replace("{", "(?P<").replace("}", ">[^/]+)") + "$")

    def register(handler: Callable[..., Response]) -> Callable[..., Response]:
        _ROUTES.append((method, regex, handler.__name__))
        return handler

    return register


class RestApi:
    """Dispatches REST requests to handlers; one instance per server."""

    def __init__(self, forge: Forge) -> None:
        self.forge = forge

    @property
    def shapes(self) -> Payloads:
        return Payloads(self.forge.url, self.forge.api_url)

    def handle(self, method: str, path: str, query: dict[str, list[str]], caller: Caller, body: bytes) -> Response:
        """Answers one request; ``path`` is below ``/api/v3`` and still percent-encoded."""
        for route_method, regex, name in _ROUTES:
            match = regex.match(path)
            if not match:
                continue
            if route_method != method:
                continue
            params = {k: unquote(v) for k, v in match.groupdict().items()}
            try:
                payload = json.loads(body) if body.strip() else {}
            except ValueError:
                return ApiError(400, "Problems parsing JSON").response
            try:
                with self.forge._lock:
                    response = getattr(self, name)(caller, query, payload, **params)
                    if method != "GET":
                        self.forge._changed()
                    return response
            except ApiError as e:
                return e.response
        return not_found().response

    # access checks -----------------------------------------------------------
    def _repo(
        self, caller: Caller, owner: str, name: str, *, need: tuple[tuple[str, str], ...] = (), write: bool = False
    ) -> Repository:
        """The repository if ``caller`` may use it with one of the permissions in ``need``."""
        repo = self.forge._repo(f"{owner}/{name.removesuffix('.git')}")
        if repo is None:
            raise not_found()
        if caller.kind == "installation_token" and caller.token is not None:
            if not self.forge.token_reaches(caller.token, repo):
                if repo.private:
                    raise not_found()
                if write:
                    raise ApiError(403, NOT_ACCESSIBLE)
                return repo
            if need and not any(grants(caller.token.permissions, p, level) for p, level in need):
                raise ApiError(403, NOT_ACCESSIBLE)
            return repo
        if repo.private:
            raise not_found()
        if write:
            if caller.kind == "anonymous":
                raise ApiError(401, "Requires authentication")
            raise ApiError(403, NOT_ACCESSIBLE)
        return repo

    @staticmethod
    def _require_jwt(caller: Caller) -> None:
        if caller.kind != "jwt":
            raise ApiError(401, "A JSON web token could not be decoded")

    def _issue(self, repo: Repository, number: str) -> Issue:
        issue = repo.issues.get(int(number)) if number.isdigit() else None
        if issue is None:
            raise not_found()
        return issue

    def _actor(self, caller: Caller) -> str:
        """The login acting for ``caller`` (the App's bot for tokens)."""
        if caller.app is None:
            raise ApiError(401, "Requires authentication")
        return caller.app.bot_login

    def _app_payload(self, app_id: int | None) -> dict[str, Any] | None:
        if app_id is None:
            return None
        app = self.forge._apps[app_id]
        return self.shapes.integration(app, self.forge._user(app.owner), self._installation_count(app.id))

    def _installation_count(self, app_id: int) -> int:
        return sum(1 for i in self.forge._installations.values() if i.app_id == app_id)

    def _paginate(self, items: list[Any], query: dict[str, list[str]], path: str) -> Response:
        try:
            per_page = min(max(int(query.get("per_page", ["30"])[0]), 1), 100)
            page = max(int(query.get("page", ["1"])[0]), 1)
        except ValueError:
            per_page, page = 30, 1
        last = max(math.ceil(len(items) / per_page), 1)
        headers = {}
        if last > 1:
            links = []
            base = {k: v[0] for k, v in query.items() if k != "page"}

            def link(p: int, rel: str) -> str:
                return f'<{self.forge.api_url}{path}?{urlencode({**base, "page": p})}>; rel="{rel}"'

            if page > 1:
                links.append(link(page - 1, "prev"))
            if page < last:
                links.append(link(page + 1, "next"))
                links.append(link(last, "last"))
            if page > 1:
                links.append(link(1, "first"))
            headers["Link"] = ", ".join(links)
        return Response(200, items[(page - 1) * per_page : page * per_page], headers)

    # app endpoints (JWT) -----------------------------------------------------
    @route("GET", "/app")
    def get_app(self, caller: Caller, query: dict, body: dict) -> Response:
        self._require_jwt(caller)
        app = caller.app
        return Response(200, self.shapes.integration(app, self.forge._user(app.owner), self._installation_count(app.id)))

    @route("POST", "/app-manifests/{code}/conversions")
    def convert_manifest_code(self, caller: Caller, query: dict, body: dict, code: str) -> Response:
        from cloud_runs.forge.manifest import convert

        converted = convert(self.forge, code)  # no authentication needed: the code is the credential
        if converted is None:
            raise ApiError(404, "Not Found", docs=f"{DOCS}/apps/apps#create-a-github-app-from-a-manifest")
        return Response(201, converted)

    @route("GET", "/repos/{owner}/{repo}/installation")
    def get_repo_installation(self, caller: Caller, query: dict, body: dict, owner: str, repo: str) -> Response:
        self._require_jwt(caller)
        found = self.forge._repo(f"{owner}/{repo}")
        inst = self.forge._installation_for(caller.app, found) if found else None
        if inst is None:
            raise ApiError(404, "Not Found", docs=f"{DOCS}/apps/apps#get-a-repository-installation-for-the-authenticated-app")
        return Response(200, self._installation_body(inst))

    def _installation_body(self, inst: Any) -> dict[str, Any]:
        app = self.forge._apps[inst.app_id]
        return self.shapes.installation(inst, app, self.forge._user(inst.owner))

    @route("GET", "/app/installations/{installation_id}")
    def get_installation(self, caller: Caller, query: dict, body: dict, installation_id: str) -> Response:
        self._require_jwt(caller)
        inst = self.forge._installations.get(int(installation_id)) if installation_id.isdigit() else None
        if inst is None or inst.app_id != caller.app.id:
            raise not_found()
        return Response(200, self._installation_body(inst))

    @route("POST", "/app/installations/{installation_id}/access_tokens")
    def create_access_token(self, caller: Caller, query: dict, body: dict, installation_id: str) -> Response:
        self._require_jwt(caller)
        forge = self.forge
        inst = forge._installations.get(int(installation_id)) if installation_id.isdigit() else None
        if inst is None or inst.app_id != caller.app.id:
            raise not_found()
        if not isinstance(body, dict):
            raise ApiError(400, "Problems parsing JSON")
        available = {
            r.name: r
            for r in forge._repos.values()
            if r.owner.lower() == inst.owner.lower() and (inst.repositories is None or r.name in inst.repositories)
        }
        names = body.get("repositories")
        ids = body.get("repository_ids")
        selected: list[str] | None = None
        if names is not None or ids is not None:
            selected = []
            inaccessible = "There is at least one repository that does not exist or is not accessible to the parent installation."
            for name in names or []:
                match = next((r for n, r in available.items() if n.lower() == str(name).lower()), None)
                if match is None:
                    raise ApiError(422, inaccessible)
                selected.append(match.name)
            for repo_id in ids or []:
                match = next((r for r in available.values() if r.id == repo_id), None)
                if match is None:
                    raise ApiError(422, inaccessible)
                selected.append(match.name)
            selected = sorted(set(selected))
        requested = body.get("permissions")
        if not requested:  # absent or {}: the installation's permissions, as on GitHub
            permissions = dict(inst.permissions)
        else:
            if not isinstance(requested, dict):
                raise validation_failed({"resource": "Installation", "field": "permissions", "code": "invalid"})
            for key, level in requested.items():
                if key not in PERMISSION_NAMES or level not in ("read", "write", "admin"):
                    raise ApiError(422, f"The permission {key}={level} is not a valid permission.")
                if LEVELS[level] > LEVELS.get(inst.permissions.get(key, "none"), 0):
                    raise ApiError(422, "The permissions requested are not granted to this installation.")
            permissions = dict(requested)
            permissions.setdefault("metadata", "read")
        token, record = forge._mint_token(inst, selected, permissions)
        shapes = self.shapes
        response: dict[str, Any] = {
            "token": token,
            "expires_at": _iso(record.expires_at),
            "permissions": permissions,
            "repository_selection": "all" if inst.repositories is None and selected is None else "selected",
        }
        if response["repository_selection"] == "selected":
            response["repositories"] = [
                shapes.repository(
                    available[n], forge._user(available[n].owner), open_issues=_open(available[n]),
                    permissions=None, full=False,
                )
                for n in forge.token_repositories(record)
            ]  # fmt: skip
        return Response(201, response)

    @route("DELETE", "/installation/token")
    def revoke_token(self, caller: Caller, query: dict, body: dict) -> Response:
        if caller.kind != "installation_token":
            raise ApiError(401, "Bad credentials" if caller.kind == "jwt" else "Requires authentication")
        caller.token.revoked = True
        return Response(204)

    # users -------------------------------------------------------------------
    @route("GET", "/users/{login}")
    def get_user(self, caller: Caller, query: dict, body: dict, login: str) -> Response:
        user = self.forge._user(login)
        if user is None:
            raise not_found()
        public = sum(1 for r in self.forge._repos.values() if r.owner == user.login and not r.private)
        return Response(200, self.shapes.public_user(user, public))

    @route("GET", "/repos/{owner}/{repo}/collaborators/{login}/permission")
    def get_permission(self, caller: Caller, query: dict, body: dict, owner: str, repo: str, login: str) -> Response:
        found = self._repo(caller, owner, repo, need=(("metadata", "read"),))
        user = self.forge._user(login)
        if user is None:
            raise ApiError(404, f"{login} is not a user")
        permission = self.forge.permission_of(found, user.login)
        legacy = {"maintain": "write", "triage": "read"}.get(permission, permission)
        body_ = self.shapes.collaborator_permission(user, permission)
        body_["permission"] = legacy
        return Response(200, body_)

    # repositories ------------------------------------------------------------
    def _repo_body(self, repo: Repository, caller: Caller | None, full: bool) -> dict[str, Any]:
        permissions = None
        if caller is not None and caller.kind == "installation_token":
            writable = grants(caller.token.permissions, "contents", "write")
            permissions = {"admin": False, "maintain": False, "push": writable, "triage": writable, "pull": True}
        return self.shapes.repository(
            repo, self.forge._user(repo.owner), open_issues=_open(repo), permissions=permissions, full=full
        )

    @route("GET", "/repos/{owner}/{repo}")
    def get_repo(self, caller: Caller, query: dict, body: dict, owner: str, repo: str) -> Response:
        found = self._repo(caller, owner, repo, need=(("metadata", "read"),))
        return Response(200, self._repo_body(found, caller, full=True))

    @route("GET", "/repos/{owner}/{repo}/branches")
    def list_branches(self, caller: Caller, query: dict, body: dict, owner: str, repo: str) -> Response:
        found = self._repo(caller, owner, repo, need=(("contents", "read"),))
        branches = sorted(self.forge.git(found).branches().items())
        items = [self.shapes.short_branch(found, name, sha) for name, sha in branches]
        return self._paginate(items, query, f"/repos/{found.full_name}/branches")

    @_ref_route("GET", "/repos/{owner}/{repo}/branches/{branch}", name="branch")
    def get_branch(self, caller: Caller, query: dict, body: dict, owner: str, repo: str, branch: str) -> Response:
        found = self._repo(caller, owner, repo, need=(("contents", "read"),))
        git = self.forge.git(found)
        sha = git.branches().get(branch)
        if sha is None:
            raise ApiError(404, "Branch not found")
        commit = self.shapes.commit(found, git.commit(sha), self.forge._users)
        return Response(200, self.shapes.branch(found, branch, commit))

    @_ref_route("GET", "/repos/{owner}/{repo}/git/ref/{ref}")
    def get_git_ref(self, caller: Caller, query: dict, body: dict, owner: str, repo: str, ref: str) -> Response:
        found = self._repo(caller, owner, repo, need=(("contents", "read"),))
        refs = self.forge.git(found).refs()
        full = f"refs/{ref}"
        if full not in refs:
            raise not_found()
        return Response(200, self.shapes.git_ref(found, full, refs[full]))

    @_ref_route("GET", "/repos/{owner}/{repo}/git/refs/{ref}")
    def get_git_refs(self, caller: Caller, query: dict, body: dict, owner: str, repo: str, ref: str) -> Response:
        # GitHub's older form: an exact ref answers with one object, a prefix with a list.
        found = self._repo(caller, owner, repo, need=(("contents", "read"),))
        refs = self.forge.git(found).refs()
        full = f"refs/{ref}"
        if full in refs:
            return Response(200, self.shapes.git_ref(found, full, refs[full]))
        prefix = full.rstrip("/") + "/"
        matching = [self.shapes.git_ref(found, r, sha) for r, sha in sorted(refs.items()) if r.startswith(prefix)]
        if not matching:
            raise not_found()
        return Response(200, matching)

    @route("GET", "/repos/{owner}/{repo}/git/refs")
    def list_git_refs(self, caller: Caller, query: dict, body: dict, owner: str, repo: str) -> Response:
        found = self._repo(caller, owner, repo, need=(("contents", "read"),))
        refs = self.forge.git(found).refs()
        items = [self.shapes.git_ref(found, r, sha) for r, sha in sorted(refs.items())]
        return self._paginate(items, query, f"/repos/{found.full_name}/git/refs")

    @_ref_route("GET", "/repos/{owner}/{repo}/git/matching-refs/{ref}")
    def matching_refs(self, caller: Caller, query: dict, body: dict, owner: str, repo: str, ref: str) -> Response:
        found = self._repo(caller, owner, repo, need=(("contents", "read"),))
        refs = self.forge.git(found).refs()
        items = [self.shapes.git_ref(found, r, sha) for r, sha in sorted(refs.items()) if r.startswith(f"refs/{ref}")]
        return Response(200, items)

    @_ref_route("GET", "/repos/{owner}/{repo}/commits/{ref}")
    def get_commit(self, caller: Caller, query: dict, body: dict, owner: str, repo: str, ref: str) -> Response:
        found = self._repo(caller, owner, repo, need=(("contents", "read"),))
        git = self.forge.git(found)
        sha = git.resolve(ref) if not ref.startswith("-") else None
        if sha is None:
            raise ApiError(422, f"No commit found for SHA: {ref}")
        return Response(200, self.shapes.commit(found, git.commit(sha), self.forge._users))

    # pull requests -----------------------------------------------------------
    def _pull_body(self, repo: Repository, issue: Issue, caller: Caller | None, full: bool) -> dict[str, Any]:
        forge = self.forge
        git = forge.git(repo)
        branches = git.branches()
        base_sha = branches.get(issue.base_ref, "")
        stats = None
        if full:
            stats = git.diff_stats(base_sha, issue.head_sha) if base_sha and issue.head_sha else (0, 0, 0, 0)
        return self.shapes.pull(
            repo,
            issue,
            user=forge._user(issue.user),
            owner=forge._user(repo.owner),
            repo_body=self._repo_body(repo, None, full=False),
            base_sha=base_sha,
            association=forge.association(repo, issue.user),
            reviewers=[forge._user(r) for r in issue.requested_reviewers],
            stats=stats,
        )

    def _pull(self, repo: Repository, number: str) -> Issue:
        issue = self._issue(repo, number)
        if not issue.is_pull:
            raise not_found()
        return issue

    @route("GET", "/repos/{owner}/{repo}/pulls")
    def list_pulls(self, caller: Caller, query: dict, body: dict, owner: str, repo: str) -> Response:
        found = self._repo(caller, owner, repo, need=(("pull_requests", "read"),))
        state = query.get("state", ["open"])[0]
        if state not in ("open", "closed", "all"):
            raise validation_failed({"resource": "PullRequest", "field": "state", "code": "invalid"})
        head = query.get("head", [None])[0]
        base = query.get("base", [None])[0]
        pulls = [i for i in found.issues.values() if i.is_pull and (state == "all" or i.state == state)]
        if head and ":" in head:  # GitHub ignores a head filter without the "owner:" part
            head_owner, _, head_ref = head.partition(":")
            pulls = [p for p in pulls if found.owner.lower() == head_owner.lower() and p.head_ref == head_ref]
        if base:
            pulls = [p for p in pulls if p.base_ref == base]
        reverse = query.get("direction", ["desc"])[0] != "asc"
        pulls.sort(key=lambda p: p.number, reverse=reverse)
        items = [self._pull_body(found, p, caller, full=False) for p in pulls]
        return self._paginate(items, query, f"/repos/{found.full_name}/pulls")

    @route("POST", "/repos/{owner}/{repo}/pulls")
    def create_pull(self, caller: Caller, query: dict, body: dict, owner: str, repo: str) -> Response:
        found = self._repo(caller, owner, repo, need=(("pull_requests", "write"),), write=True)
        actor = self._actor(caller)
        forge = self.forge
        title, head, base = body.get("title"), body.get("head"), body.get("base")
        for name, value in (("title", title), ("head", head), ("base", base)):
            if not value or not isinstance(value, str):
                raise validation_failed({"resource": "PullRequest", "field": name, "code": "missing_field"})
        head_owner, _, head_ref = head.rpartition(":")
        if head_owner and head_owner.lower() != found.owner.lower():
            raise validation_failed({"resource": "PullRequest", "field": "head", "code": "invalid"})
        branches = forge.git(found).branches()
        if base not in branches:
            raise validation_failed({"resource": "PullRequest", "field": "base", "code": "invalid"})
        if head_ref not in branches:
            raise validation_failed({"resource": "PullRequest", "field": "head", "code": "invalid"})
        for other in found.issues.values():
            if other.is_pull and other.state == "open" and other.head_ref == head_ref:
                message = f"A pull request already exists for {found.owner}:{head_ref}."
                raise validation_failed({"resource": "PullRequest", "code": "custom", "message": message})
        commits = forge.git(found).diff_stats(branches[base], branches[head_ref])[0]
        if commits == 0:
            message = f"No commits between {base} and {head_ref}"
            raise validation_failed({"resource": "PullRequest", "code": "custom", "message": message})
        now = forge.now()
        issue = Issue(
            id=forge._new_id(),
            number=found.next_number,
            title=title,
            body=body.get("body"),
            user=actor,
            created_at=now,
            updated_at=now,
            app_id=caller.app.id,
            pull_id=forge._new_id(),
            head_ref=head_ref,
            head_sha=branches[head_ref],
            base_ref=base,
            draft=bool(body.get("draft", False)),
        )
        found.issues[issue.number] = issue
        found.next_number += 1
        response = Response(201, self._pull_body(found, issue, caller, full=True))
        response.headers["Location"] = response.body["url"]
        return response

    @route("GET", "/repos/{owner}/{repo}/pulls/{number}")
    def get_pull(self, caller: Caller, query: dict, body: dict, owner: str, repo: str, number: str) -> Response:
        found = self._repo(caller, owner, repo, need=(("pull_requests", "read"),))
        return Response(200, self._pull_body(found, self._pull(found, number), caller, full=True))

    @route("PATCH", "/repos/{owner}/{repo}/pulls/{number}")
    def update_pull(self, caller: Caller, query: dict, body: dict, owner: str, repo: str, number: str) -> Response:
        found = self._repo(caller, owner, repo, need=(("pull_requests", "write"),), write=True)
        issue = self._pull(found, number)
        forge = self.forge
        if "state" in body:
            if body["state"] not in ("open", "closed"):
                raise validation_failed({"resource": "PullRequest", "field": "state", "code": "invalid"})
            if body["state"] == "open" and issue.state == "closed":
                for other in found.issues.values():
                    if other.is_pull and other.state == "open" and other.head_ref == issue.head_ref:
                        message = f"A pull request already exists for {found.owner}:{issue.head_ref}."
                        raise validation_failed({"resource": "PullRequest", "code": "custom", "message": message})
            issue.state = body["state"]
            issue.closed_at = forge.now() if issue.state == "closed" else None
        if "base" in body:
            if body["base"] not in forge.git(found).branches():
                raise validation_failed({"resource": "PullRequest", "field": "base", "code": "invalid"})
            issue.base_ref = body["base"]
        if "title" in body:
            if not body["title"]:
                raise validation_failed({"resource": "PullRequest", "field": "title", "code": "missing_field"})
            issue.title = body["title"]
        if "body" in body:
            issue.body = body["body"]
        issue.updated_at = forge.now()
        return Response(200, self._pull_body(found, issue, caller, full=True))

    @route("POST", "/repos/{owner}/{repo}/pulls/{number}/requested_reviewers")
    def request_reviewers(self, caller: Caller, query: dict, body: dict, owner: str, repo: str, number: str) -> Response:
        found = self._repo(caller, owner, repo, need=(("pull_requests", "write"),), write=True)
        issue = self._pull(found, number)
        forge = self.forge
        reviewers = body.get("reviewers") or []
        if body.get("team_reviewers"):
            raise validation_failed({"resource": "PullRequest", "field": "team_reviewers", "code": "invalid"})
        for login in reviewers:
            user = forge._user(login)
            if user is not None and user.login.lower() == issue.user.lower():
                raise ApiError(422, "Review cannot be requested from pull request author.")
            if user is None or forge.permission_of(found, user.login) not in ("triage", "write", "maintain", "admin"):
                message = (
                    "Reviews may only be requested from collaborators. One or more of the users or teams you "
                    f"specified is not a collaborator of the {found.full_name} repository."
                )
                raise ApiError(422, message)
        for login in reviewers:
            name = forge._user(login).login
            if name not in issue.requested_reviewers:
                issue.requested_reviewers.append(name)
        issue.updated_at = forge.now()
        return Response(201, self._pull_body(found, issue, caller, full=False))

    # issues ------------------------------------------------------------------
    def _issue_body(self, repo: Repository, issue: Issue) -> dict[str, Any]:
        forge = self.forge
        return self.shapes.issue(
            repo, issue, forge._user(issue.user), forge.association(repo, issue.user), self._app_payload(issue.app_id)
        )

    def _issue_need(self, caller: Caller, repo: Repository, number: str, level: str) -> tuple[Repository, Issue]:
        """Checks issues (or, for a pull request, pull_requests) permission at ``level``."""
        issue = self._issue(self._repo(caller, repo.owner, repo.name, need=(("metadata", "read"),)), number)
        need = (("issues", level), ("pull_requests", level)) if issue.is_pull else (("issues", level),)
        return self._repo(caller, repo.owner, repo.name, need=need, write=level == "write"), issue

    def _visible_repo(self, caller: Caller, owner: str, repo: str) -> Repository:
        return self._repo(caller, owner, repo, need=(("metadata", "read"),))

    @route("GET", "/repos/{owner}/{repo}/issues")
    def list_issues(self, caller: Caller, query: dict, body: dict, owner: str, repo: str) -> Response:
        found = self._repo(caller, owner, repo, need=(("issues", "read"),))
        state = query.get("state", ["open"])[0]
        if state not in ("open", "closed", "all"):
            raise validation_failed({"resource": "Issue", "field": "state", "code": "invalid"})
        wanted = [name.strip().lower() for name in query.get("labels", [""])[0].split(",") if name.strip()]
        issues = [
            i
            for i in found.issues.values()
            if (state == "all" or i.state == state) and all(w in {l.lower() for l in i.labels} for w in wanted)
        ]
        creator = query.get("creator", [None])[0]
        if creator:
            issues = [i for i in issues if i.user.lower() == creator.lower()]
        reverse = query.get("direction", ["desc"])[0] != "asc"
        issues.sort(key=lambda i: i.number, reverse=reverse)
        items = [self._issue_body(found, i) for i in issues]
        return self._paginate(items, query, f"/repos/{found.full_name}/issues")

    @route("GET", "/repos/{owner}/{repo}/issues/{number}")
    def get_issue(self, caller: Caller, query: dict, body: dict, owner: str, repo: str, number: str) -> Response:
        found, issue = self._issue_need(caller, self._visible_repo(caller, owner, repo), number, "read")
        return Response(200, self._issue_body(found, issue))

    @route("GET", "/repos/{owner}/{repo}/issues/{number}/comments")
    def list_comments(self, caller: Caller, query: dict, body: dict, owner: str, repo: str, number: str) -> Response:
        found, issue = self._issue_need(caller, self._visible_repo(caller, owner, repo), number, "read")
        items = [self._comment_body(found, issue, c) for c in issue.comments]
        return self._paginate(items, query, f"/repos/{found.full_name}/issues/{issue.number}/comments")

    def _comment_body(self, repo: Repository, issue: Issue, comment: Any) -> dict[str, Any]:
        forge = self.forge
        user = forge._user(comment.user)
        association = forge.association(repo, comment.user)
        return self.shapes.comment(repo, issue, comment, user, association, self._app_payload(comment.app_id))

    @route("POST", "/repos/{owner}/{repo}/issues/{number}/comments")
    def create_comment(self, caller: Caller, query: dict, body: dict, owner: str, repo: str, number: str) -> Response:
        from cloud_runs.forge.state import Comment

        found, issue = self._issue_need(caller, self._visible_repo(caller, owner, repo), number, "write")
        actor = self._actor(caller)
        text = body.get("body")
        if not isinstance(text, str) or not text:
            raise validation_failed({"resource": "IssueComment", "field": "body", "code": "missing_field"})
        now = self.forge.now()
        comment = Comment(self.forge._new_id(), actor, text, now, now, app_id=caller.app.id)
        issue.comments.append(comment)
        issue.updated_at = now
        response = Response(201, self._comment_body(found, issue, comment))
        response.headers["Location"] = response.body["url"]
        return response

    @route("PATCH", "/repos/{owner}/{repo}/issues/comments/{comment_id}")
    def update_comment(self, caller: Caller, query: dict, body: dict, owner: str, repo: str, comment_id: str) -> Response:
        found = self._visible_repo(caller, owner, repo)
        for issue in found.issues.values():
            for comment in issue.comments:
                if str(comment.id) == comment_id:
                    self._issue_need(caller, found, str(issue.number), "write")
                    text = body.get("body") if isinstance(body, dict) else None
                    if not isinstance(text, str) or not text:
                        raise validation_failed({"resource": "IssueComment", "field": "body", "code": "missing_field"})
                    comment.body, comment.updated_at = text, self.forge.now()
                    return Response(200, self._comment_body(found, issue, comment))
        raise ApiError(404, "Not Found", docs=f"{DOCS}/issues/comments#update-an-issue-comment")

    @route("GET", "/repos/{owner}/{repo}/issues/{number}/labels")
    def list_labels(self, caller: Caller, query: dict, body: dict, owner: str, repo: str, number: str) -> Response:
        found, issue = self._issue_need(caller, self._visible_repo(caller, owner, repo), number, "read")
        return Response(200, [self.shapes.label(found, found.labels[n.lower()]) for n in issue.labels])

    @route("POST", "/repos/{owner}/{repo}/issues/{number}/labels")
    def add_labels(self, caller: Caller, query: dict, body: Any, owner: str, repo: str, number: str) -> Response:
        found, issue = self._issue_need(caller, self._visible_repo(caller, owner, repo), number, "write")
        names = body if isinstance(body, list) else body.get("labels") if isinstance(body, dict) else None
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise validation_failed({"resource": "Label", "field": "labels", "code": "invalid"})
        for name in names:
            label = self.forge._ensure_label(found, name)
            if label.name not in issue.labels:
                issue.labels.append(label.name)
        issue.updated_at = self.forge.now()
        return Response(200, [self.shapes.label(found, found.labels[n.lower()]) for n in issue.labels])

    @route("DELETE", "/repos/{owner}/{repo}/issues/{number}/labels/{name}")
    def remove_label(
        self, caller: Caller, query: dict, body: dict, owner: str, repo: str, number: str, name: str
    ) -> Response:
        found, issue = self._issue_need(caller, self._visible_repo(caller, owner, repo), number, "write")
        match = next((n for n in issue.labels if n.lower() == name.lower()), None)
        if match is None:
            raise ApiError(404, "Label does not exist")
        issue.labels.remove(match)
        issue.updated_at = self.forge.now()
        return Response(200, [self.shapes.label(found, found.labels[n.lower()]) for n in issue.labels])


def _open(repo: Repository) -> int:
    return sum(1 for i in repo.issues.values() if i.state == "open")


def _iso(timestamp: float) -> str:
    from cloud_runs.forge.payloads import iso

    return iso(timestamp) or ""
