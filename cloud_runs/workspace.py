"""The repository inside the sandbox: clone it in, take the agent's work out.

Git runs inside the sandbox here. The only credential that ever reaches it is
the clone's read-only token, passed in the clone process's environment (never
a URL, argv or file) and revoked by the caller right after.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cloud_runs.github.git import clone_argv, git_auth_env
from cloud_runs.sandboxes.base import OutputCallback, Sandbox, SandboxError

REPO_DIR = "/workspace/repo"
WORK_DIR = "/tmp/cloud-runs"
BUNDLE_PATH = f"{WORK_DIR}/work.bundle"
# Git in the sandbox must not run the agent's hooks or filters while we collect,
# nor ask for anything.
_SAFE_GIT = ["git", "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-C", REPO_DIR]
_GIT_TIMEOUT = 300


@dataclass(frozen=True)
class Changes:
    """The agent's work: a bundle of commits on top of ``base_sha`` (None when nothing changed)."""

    base_sha: str
    head_sha: str
    bundle: bytes | None
    committed_for_agent: bool

    @property
    def empty(self) -> bool:
        return self.bundle is None


def _run(sandbox: Sandbox, argv: list[str], *, env: Mapping[str, str] | None = None,
         on_output: OutputCallback | None = None, what: str) -> str:
    lines: list[str] = []

    def collect(stream: str, line: str) -> None:
        lines.append(line)
        if on_output is not None:
            on_output(stream, line)

    result = sandbox.exec(argv, env=env, timeout=_GIT_TIMEOUT, on_output=collect)
    if not result.ok:
        tail = "\n".join(lines[-10:])
        raise SandboxError(
            f"{what} failed in the sandbox (exit {result.exit_code}{', timed out' if result.timed_out else ''}):\n{tail}",
            hint="check the repository, the base branch and the sandbox's network access",
        )
    return "\n".join(lines)


def clone(sandbox: Sandbox, *, clone_url: str, token: str, branch: str,
          on_output: OutputCallback | None = None) -> str:
    """Clones ``branch`` of ``clone_url`` into :data:`REPO_DIR`; returns the base commit SHA."""
    _run(sandbox, ["mkdir", "-p", "/workspace", WORK_DIR], what="preparing the workspace")
    _run(sandbox, clone_argv(clone_url, REPO_DIR, branch=branch), env=git_auth_env(token, clone_url),
         on_output=on_output, what="git clone")
    return _run(sandbox, [*_SAFE_GIT, "rev-parse", "HEAD"], what="reading the base commit").strip().splitlines()[-1]


def collect(sandbox: Sandbox, *, base_sha: str, identity_env: Mapping[str, str], message: str) -> Changes:
    """Commits what the agent left uncommitted (as the App's bot) and bundles
    every commit on top of ``base_sha``."""
    status = _run(sandbox, [*_SAFE_GIT, "status", "--porcelain", "--untracked-files=all"], what="git status")
    committed = False
    if status.strip():
        _run(sandbox, [*_SAFE_GIT, "add", "--all"], what="git add")
        _run(sandbox, [*_SAFE_GIT, "commit", "--no-verify", "--quiet", "-m", message], env=identity_env,
             what="committing the agent's changes")
        committed = True
    head = _run(sandbox, [*_SAFE_GIT, "rev-parse", "HEAD"], what="reading HEAD").strip().splitlines()[-1]
    if head == base_sha:
        return Changes(base_sha=base_sha, head_sha=head, bundle=None, committed_for_agent=False)
    _run(sandbox, [*_SAFE_GIT, "bundle", "create", "--quiet", BUNDLE_PATH, "HEAD", f"^{base_sha}"],
         what="bundling the agent's commits")
    return Changes(base_sha=base_sha, head_sha=head, bundle=sandbox.read_file(BUNDLE_PATH), committed_for_agent=committed)
