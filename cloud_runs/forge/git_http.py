"""git smart HTTP, served by Debian's ``git http-backend`` behind GitHub's access rules.

Authentication is GitHub's: HTTP Basic with the token as password (any user
name, usually ``x-access-token``) or ``Authorization: Bearer``. Reading needs
``contents: read``, pushing ``contents: write``; a push that touches
``.github/workflows/`` without ``workflows: write`` is refused by the
repository's pre-receive hook with GitHub's wording.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cloud_runs.forge.auth import AuthFailure, Caller, resolve_caller
from cloud_runs.forge.gitrepo import git_env
from cloud_runs.forge.state import grants

if TYPE_CHECKING:
    from cloud_runs.forge.forge import Forge

HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"
BACKEND_TIMEOUT = 300.0
GIT_PATH = re.compile(
    r"^/(?P<owner>[^/]+)/(?P<repo>[^/]+?)(?:\.git)?"
    r"(?P<rest>/(?:info/refs|git-upload-pack|git-receive-pack|HEAD|objects/.+))$"
)


@dataclass
class GitResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    caller: Caller | None = None


def _text(status: int, message: str, *extra: tuple[str, str]) -> GitResponse:
    return GitResponse(status, [("Content-Type", "text/plain; charset=utf-8"), *extra], f"{message}\n".encode())


def _unauthorized(message: str = "Authentication required") -> GitResponse:
    return _text(401, message, ("WWW-Authenticate", 'Basic realm="GitHub"'))


def is_git_path(path: str) -> bool:
    return GIT_PATH.match(path) is not None


def serve_git(
    forge: Forge, method: str, path: str, query: str, headers: dict[str, str], body: bytes, client: str
) -> GitResponse:
    """Answers one git smart HTTP request for ``path`` (``/<owner>/<repo>.git/...``)."""
    match = GIT_PATH.match(path)
    assert match is not None
    repo = forge._repo(f"{match['owner']}/{match['repo']}")
    rest = match["rest"]
    service = rest.lstrip("/") if rest in ("/git-upload-pack", "/git-receive-pack") else ""
    if rest == "/info/refs":
        service = dict(p.partition("=")[::2] for p in query.split("&") if p).get("service", "")
    pushing = service == "git-receive-pack"

    try:
        caller = resolve_caller(forge, headers.get("authorization"))
    except AuthFailure:
        # GitHub answers a bad, expired or revoked token on git with 401.
        return _unauthorized("Invalid username or token. Password authentication is not supported for Git operations.")
    if caller.kind == "jwt":
        return _unauthorized("Invalid username or token. Password authentication is not supported for Git operations.")

    not_found = _text(404, "Repository not found.")
    if repo is None:
        return _unauthorized() if caller.kind == "anonymous" else not_found
    actor = "anonymous"
    workflows = "none"
    if caller.kind == "installation_token":
        actor = caller.app.bot_login if caller.app else "x-access-token"
        token = caller.token
        if not forge.token_reaches(token, repo):
            if repo.private:
                return not_found
            if pushing:
                return _text(403, f"Permission to {repo.full_name}.git denied to {actor}.")
        elif pushing and not grants(token.permissions, "contents", "write"):
            return _text(403, f"Permission to {repo.full_name}.git denied to {actor}.")
        elif not pushing and not grants(token.permissions, "contents", "read"):
            return _text(403, f"Permission to {repo.full_name}.git denied to {actor}.")
        if grants(token.permissions, "workflows", "write"):
            workflows = "write"
    elif repo.private or pushing:
        return _unauthorized()

    env = git_env()
    env.update(
        GIT_PROJECT_ROOT=str(forge.repos_root),
        GIT_HTTP_EXPORT_ALL="1",
        PATH_INFO=f"/{repo.owner}/{repo.name}.git{rest}",
        REQUEST_METHOD=method,
        QUERY_STRING=query,
        CONTENT_TYPE=headers.get("content-type", ""),
        CONTENT_LENGTH=str(len(body)),
        REMOTE_ADDR=client,
        FORGE_WORKFLOWS_PERMISSION=workflows,
    )
    if caller.kind == "installation_token":
        env["REMOTE_USER"] = actor  # http-backend enables receive-pack only for authenticated users
    if "git-protocol" in headers:
        env["GIT_PROTOCOL"] = headers["git-protocol"]
    if "content-encoding" in headers:
        env["HTTP_CONTENT_ENCODING"] = headers["content-encoding"]
    try:
        result = subprocess.run(
            [HTTP_BACKEND], input=body, capture_output=True, env=env, timeout=BACKEND_TIMEOUT, cwd=forge.repos_root
        )
    except subprocess.TimeoutExpired:
        return _text(504, "git http-backend timed out")
    response = _parse_cgi(result.stdout)
    response.caller = caller
    if pushing and method == "POST":
        forge._after_push(repo)
    return response


def _parse_cgi(output: bytes) -> GitResponse:
    head, sep, body = output.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = output.partition(b"\n\n")
    status = 200
    headers: list[tuple[str, str]] = []
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.strip().split(" ")[0])
        elif name:
            headers.append((name.strip(), value.strip()))
    return GitResponse(status, headers, body)
