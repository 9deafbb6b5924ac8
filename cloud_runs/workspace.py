"""The repository inside the sandbox: clone it in, take the agent's work out.

Git runs inside the sandbox here. The only credential that ever reaches it is
the clone's read-only token, passed in the clone process's environment (never
a URL, argv or file) and revoked by the caller right after.

Each step is one fixed shell script run with its inputs as positional
arguments (never interpolated into the script), so a step costs one exec: on
Docker and Modal every exec is a round trip.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cloud_runs.github.git import clone_argv, git_auth_env
from cloud_runs.sandboxes.base import OutputCallback, Sandbox, SandboxError

REPO_DIR = "/workspace/repo"
WORK_DIR = "/tmp/cloud-runs"
BUNDLE_PATH = f"{WORK_DIR}/work.bundle"
_GIT_TIMEOUT = 300

# $1 repository dir, $2 work dir, then the clone command. Prints the base SHA last.
_CLONE = r'''set -eu
repo=$1 work=$2; shift 2
rm -rf "$repo"; mkdir -p "$(dirname "$repo")" "$work"
"$@"
git -C "$repo" rev-parse HEAD
'''

# $1 repository dir, $2 base SHA, $3 commit message, $4 bundle path. Git must
# not run the agent's hooks or fsmonitor while we collect.
_COLLECT = r'''set -eu
cd "$1"
safe_git() { git -c core.hooksPath=/dev/null -c core.fsmonitor=false "$@"; }
if [ -n "$(safe_git status --porcelain --untracked-files=all)" ]; then
  safe_git add --all
  safe_git commit --no-verify --quiet -m "$3"
  echo committed
fi
head=$(safe_git rev-parse HEAD)
if [ "$head" != "$2" ]; then safe_git bundle create --quiet "$4" HEAD "^$2"; fi
echo "head $head"
'''


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


def _script(sandbox: Sandbox, script: str, args: list[str], *, env: Mapping[str, str] | None = None,
            on_output: OutputCallback | None = None, what: str) -> list[str]:
    """Runs ``script`` with ``args`` as $1...; returns its stdout lines."""
    streams: dict[str, list[str]] = {"stdout": [], "stderr": []}

    def record(stream: str, line: str) -> None:
        streams[stream].append(line)
        if on_output is not None:
            on_output(stream, line)

    result = sandbox.exec(["sh", "-c", script, "cloud-runs", *args], env=env, timeout=_GIT_TIMEOUT, on_output=record)
    if not result.ok:
        tail = "\n".join((streams["stderr"] or streams["stdout"])[-10:])
        raise SandboxError(
            f"{what} failed in the sandbox (exit {result.exit_code}{', timed out' if result.timed_out else ''}):\n{tail}",
            hint="check the repository, the base branch and the sandbox's network access",
        )
    return streams["stdout"]


def clone(sandbox: Sandbox, *, clone_url: str, token: str, branch: str,
          on_output: OutputCallback | None = None) -> str:
    """Clones ``branch`` of ``clone_url`` into :data:`REPO_DIR`; returns the base commit SHA."""
    lines = _script(sandbox, _CLONE, [REPO_DIR, WORK_DIR, *clone_argv(clone_url, REPO_DIR, branch=branch)],
                    env=git_auth_env(token, clone_url), on_output=on_output, what="git clone")
    return lines[-1].strip()


def collect(sandbox: Sandbox, *, base_sha: str, identity_env: Mapping[str, str], message: str) -> Changes:
    """Commits what the agent left uncommitted (as the App's bot) and bundles
    every commit on top of ``base_sha``."""
    lines = _script(sandbox, _COLLECT, [REPO_DIR, base_sha, message, BUNDLE_PATH], env=identity_env,
                    what="collecting the agent's changes")
    head = lines[-1].removeprefix("head ").strip()
    committed = "committed" in lines
    if head == base_sha:
        return Changes(base_sha=base_sha, head_sha=head, bundle=None, committed_for_agent=False)
    return Changes(base_sha=base_sha, head_sha=head, bundle=sandbox.read_file(BUNDLE_PATH), committed_for_agent=committed)
