"""Helpers shared by the forge tests: a forge with an App installed, tokens, git."""

from __future__ import annotations

import base64
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from github import Auth, Github, GithubIntegration

from cloud_runs.forge import Forge, ForgeApp

NO_THROTTLE: dict[str, Any] = {"seconds_between_requests": None, "seconds_between_writes": None}
GIT_TIMEOUT = 60


@dataclass
class World:
    """A running forge with the App ``cloud-runs-dev`` installed on ``acme`` (all repositories)."""

    forge: Forge
    app: ForgeApp
    installation_id: int

    def integration(self, issuer: str | int | None = None, private_key: str | None = None) -> GithubIntegration:
        auth = Auth.AppAuth(issuer if issuer is not None else self.app.client_id, private_key or self.app.private_key_pem)
        return GithubIntegration(auth=auth, base_url=self.forge.api_url, retry=0, **NO_THROTTLE)

    def token(self, repositories: list[str] | None = None, permissions: dict[str, str] | None = None) -> str:
        """Mints an installation token through PyGithub's requester (PyGithub cannot scope repositories itself)."""
        body: dict[str, Any] = {}
        if repositories is not None:
            body["repositories"] = repositories
        if permissions is not None:
            body["permissions"] = permissions
        _, data = self.integration().requester.requestJsonAndCheck(
            "POST", f"/app/installations/{self.installation_id}/access_tokens", input=body
        )
        return data["token"]

    def github(self, token: str | None = None, retry: Any = 0) -> Github:
        auth = Auth.Token(token) if token else None
        return Github(auth=auth, base_url=self.forge.api_url, retry=retry, **NO_THROTTLE)


def make_world(forge: Forge, permissions: dict[str, str] | None = None) -> World:
    app = forge.create_app(
        slug="cloud-runs-dev",
        name="Cloud Runs Dev",
        permissions=permissions
        or {"contents": "write", "pull_requests": "write", "issues": "write", "metadata": "read"},
        owner="acme",
    )
    forge.create_repo("acme/widgets", files={"README.md": "# widgets\n", "src/app.py": "print('hi')\n"})
    forge.create_repo("acme/gadgets", files={"README.md": "# gadgets\n"})
    forge.create_repo("acme/public-site", files={"index.html": "<h1>hi</h1>\n"}, private=False)
    installation_id = forge.install_app(app.id, owner="acme")
    return World(forge, app, installation_id)


def git_env(forge: Forge, token: str | None) -> dict[str, str]:
    """Environment-only git auth, as the project passes tokens to git (nothing in argv or on disk)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    env.update(GIT_AUTHOR_NAME="Test", GIT_AUTHOR_EMAIL="test@example.com")
    env.update(GIT_COMMITTER_NAME="Test", GIT_COMMITTER_EMAIL="test@example.com")
    if token is not None:
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        env.update(
            GIT_CONFIG_COUNT="1",
            GIT_CONFIG_KEY_0=f"http.{forge.url}/.extraheader",
            GIT_CONFIG_VALUE_0=f"Authorization: Basic {basic}",
        )
    return env


def git(*args: str, cwd: Path, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["git", "-c", "credential.helper=", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=GIT_TIMEOUT,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def clone(forge: Forge, full_name: str, dest: Path, token: str | None) -> Path:
    git("clone", "--quiet", f"{forge.url}/{full_name}.git", str(dest), cwd=dest.parent, env=git_env(forge, token))
    return dest


def commit_file(worktree: Path, path: str, content: str | bytes, message: str = "change") -> str:
    target = worktree / path
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        target.write_text(content)
    env = git_env_plain()
    git("add", "--all", cwd=worktree, env=env)
    git("commit", "--quiet", "-m", message, cwd=worktree, env=env)
    return git("rev-parse", "HEAD", cwd=worktree, env=env).stdout.strip()


def git_env_plain() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_TERMINAL_PROMPT="0")
    env.update(GIT_AUTHOR_NAME="Test", GIT_AUTHOR_EMAIL="test@example.com")
    env.update(GIT_COMMITTER_NAME="Test", GIT_COMMITTER_EMAIL="test@example.com")
    return env


def server_branches(forge: Forge, full_name: str) -> dict[str, str]:
    out = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads/"],
        cwd=forge.repo_path(full_name),
        capture_output=True,
        text=True,
        timeout=GIT_TIMEOUT,
        check=True,
    ).stdout
    return dict(line.split(" ", 1) for line in out.splitlines())
