"""Fixtures for the GitHub client tests: a forge per module, a fresh App and repository per test."""

from __future__ import annotations

import itertools
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cloud_runs.github.app import GitHubAppAuth
from cloud_runs.github.retry import RetryPolicy

_names = itertools.count(1)

DEFAULT_PERMISSIONS = {"contents": "write", "pull_requests": "write", "issues": "write", "metadata": "read"}


@pytest.fixture(scope="module")
def forge(tmp_path_factory):
    from cloud_runs.forge import Forge

    with Forge(tmp_path_factory.mktemp("forge")) as running:
        yield running


@dataclass
class World:
    """One App installed on one repository of the forge, and the auth a run would build."""

    forge: object
    app: object
    repository: str
    installation_id: int
    waits: list[float] = field(default_factory=list)

    def auth(self, **overrides) -> GitHubAppAuth:
        settings = dict(
            client_id=self.app.client_id,
            private_key=self.app.private_key_pem,
            api_url=self.forge.api_url,
            web_url=self.forge.url,
            clock=self.forge.now,
            retry=self.retry(),
            seconds_between_requests=None,
            seconds_between_writes=None,
            timeout=10,
        )
        settings.update(overrides)
        return GitHubAppAuth(**settings)

    def retry(self, **overrides) -> RetryPolicy:
        # Waits are recorded, not slept; jitter off so the waits are exact.
        return RetryPolicy(**{"sleep": self.waits.append, "clock": self.forge.now, "jitter": 0, **overrides})

    @property
    def clone_url(self) -> str:
        return f"{self.forge.url}/{self.repository}.git"


def make_world(forge, permissions=None, files=None) -> World:
    n = next(_names)
    app = forge.create_app(slug=f"cloud-runs-test-{n}", permissions=dict(permissions or DEFAULT_PERMISSIONS))
    owner = f"acme{n}"
    forge.create_repo(f"{owner}/widgets", files=files or {"README.md": "hi\n", "src/app.py": "print('hi')\n"})
    forge.create_repo(f"{owner}/gadgets", files={"README.md": "other\n"})
    installation = forge.install_app(app.id, owner=owner, repositories=["widgets", "gadgets"])
    return World(forge, app, f"{owner}/widgets", installation)


@pytest.fixture
def world(forge) -> World:
    return make_world(forge)


GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Agent",
    "GIT_AUTHOR_EMAIL": "agent@example.invalid",
    "GIT_COMMITTER_NAME": "Agent",
    "GIT_COMMITTER_EMAIL": "agent@example.invalid",
}


def git(cwd: Path, *args: str, env: dict | None = None) -> str:
    """Plain local git for test set-up (no network, no credentials)."""
    full_env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C", **GIT_IDENTITY,
                **(env or {})}
    return subprocess.run(
        ["git", *args], cwd=cwd, env=full_env, check=True, capture_output=True, timeout=60
    ).stdout.decode().strip()
