"""Bare git repositories on disk, driven through the real ``git`` CLI.

The forge keeps one bare repository per hosted repository. Everything here is
plumbing: create a repository with an initial commit, read refs and commits,
and install the hook that enforces the ``workflows`` permission on pushes.

Example:
    >>> repo = BareRepo.create(Path("/tmp/x.git"), {"README.md": "hi"}, branch="main",
    ...                        author=("alice", "alice@example.com"), timestamp=1_700_000_000)
    >>> repo.branches()
    {'main': '...'}
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

GIT_TIMEOUT = 60.0
ZERO_SHA = "0" * 40

# Runs inside `git receive-pack` (spawned by `git http-backend`), which inherits
# FORGE_WORKFLOWS_PERMISSION from the CGI environment the forge sets per request.
# Written in sh so it does not depend on the Python environment that made the repo.
_PRE_RECEIVE_HOOK = """#!/bin/sh
# Installed by the cloud-runs forge: GitHub refuses pushes from GitHub Apps that
# create or update workflow files unless the token has the `workflows` permission.
[ "$FORGE_WORKFLOWS_PERMISSION" = "write" ] && exit 0
zero=0000000000000000000000000000000000000000
refused=""
while read old new ref; do
  [ "$new" = "$zero" ] && continue
  for commit in $(git rev-list "$new" --not --all); do
    for path in $(git diff-tree -r --name-only --no-commit-id --root -m "$commit" -- .github/workflows); do
      refused="$path"
    done
  done
done
if [ -n "$refused" ]; then
  echo "refusing to allow a GitHub App to create or update workflow \\`$refused\\` without \\`workflows\\` permission" >&2
  exit 1
fi
exit 0
"""


def git_env() -> dict[str, str]:
    """Environment for forge-side git commands: no user or system config leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_TERMINAL_PROMPT="0")
    return env


@dataclass(frozen=True)
class CommitInfo:
    """The parts of a commit the REST API reports."""

    sha: str
    tree: str
    parents: list[str]
    author_name: str
    author_email: str
    author_time: int
    committer_name: str
    committer_email: str
    committer_time: int
    message: str


class BareRepo:
    """A bare repository at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def git(self, *args: str, input: bytes | None = None, env: dict[str, str] | None = None) -> bytes:
        """Runs ``git`` in the repository and returns stdout; raises on failure."""
        full_env = git_env()
        if env:
            full_env.update(env)
        result = subprocess.run(
            ["git", *args],
            cwd=self.path,
            input=input,
            capture_output=True,
            env=full_env,
            timeout=GIT_TIMEOUT,
        )
        if result.returncode != 0:
            raise RuntimeError(f"git {args[0]} failed in {self.path}: {result.stderr.decode(errors='replace').strip()}")
        return result.stdout

    @classmethod
    def create(
        cls,
        path: Path,
        files: dict[str, str | bytes],
        *,
        branch: str,
        author: tuple[str, str],
        timestamp: int,
    ) -> BareRepo:
        """Creates a bare repository whose ``branch`` holds one commit with ``files``."""
        path.mkdir(parents=True, exist_ok=False)
        repo = cls(path)
        repo.git("init", "--quiet", "--bare", f"--initial-branch={branch}")
        repo.configure()
        index = path / "forge-initial-index"
        env = {"GIT_INDEX_FILE": str(index)}
        for name, content in sorted(files.items()):
            data = content.encode() if isinstance(content, str) else content
            blob = repo.git("hash-object", "-w", "--stdin", input=data).decode().strip()
            repo.git("update-index", "--add", "--cacheinfo", f"100644,{blob},{name}", env=env)
        tree = repo.git("write-tree", env=env).decode().strip()
        index.unlink(missing_ok=True)
        date = f"{timestamp} +0000"
        commit_env = {
            "GIT_AUTHOR_NAME": author[0],
            "GIT_AUTHOR_EMAIL": author[1],
            "GIT_AUTHOR_DATE": date,
            "GIT_COMMITTER_NAME": author[0],
            "GIT_COMMITTER_EMAIL": author[1],
            "GIT_COMMITTER_DATE": date,
        }
        commit = repo.git("commit-tree", tree, "-m", "Initial commit", env=commit_env).decode().strip()
        repo.git("update-ref", f"refs/heads/{branch}", commit)
        return repo

    def configure(self) -> None:
        """Applies the server-side settings GitHub behaves like; safe to repeat."""
        # Clients may fetch any commit by id, as they can on GitHub.
        self.git("config", "uploadpack.allowAnySHA1InWant", "true")
        self.git("config", "receive.denyDeleteCurrent", "true")
        hook = self.path / "hooks" / "pre-receive"
        hook.parent.mkdir(exist_ok=True)
        hook.write_text(_PRE_RECEIVE_HOOK)
        hook.chmod(0o755)

    def refs(self, prefix: str = "refs/") -> dict[str, str]:
        """Maps full ref names under ``prefix`` to the commit they point at."""
        out = self.git("for-each-ref", "--format=%(refname) %(objectname)", prefix).decode()
        return dict(line.split(" ", 1) for line in out.splitlines() if line)

    def branches(self) -> dict[str, str]:
        """Maps branch names to their head commit."""
        return {name.removeprefix("refs/heads/"): sha for name, sha in self.refs("refs/heads/").items()}

    def resolve(self, revision: str) -> str | None:
        """Returns the commit id ``revision`` names, or None."""
        full_env = git_env()
        result = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"],
            cwd=self.path,
            capture_output=True,
            env=full_env,
            timeout=GIT_TIMEOUT,
        )
        return result.stdout.decode().strip() if result.returncode == 0 else None

    def commit(self, sha: str) -> CommitInfo:
        """Reads a commit object."""
        raw = self.git("cat-file", "commit", sha).decode(errors="replace")
        header, _, message = raw.partition("\n\n")
        tree, parents = "", []
        author = committer = ("", "", 0)
        for line in header.splitlines():
            key, _, value = line.partition(" ")
            if key == "tree":
                tree = value
            elif key == "parent":
                parents.append(value)
            elif key in ("author", "committer"):
                name, _, rest = value.partition(" <")
                email, _, when = rest.partition("> ")
                person = (name, email, int(when.split(" ")[0]))
                if key == "author":
                    author = person
                else:
                    committer = person
        return CommitInfo(sha, tree, parents, *author, *committer, message)

    def diff_stats(self, base: str, head: str) -> tuple[int, int, int, int]:
        """(commits, additions, deletions, changed files) of ``head`` since its merge base with ``base``."""
        commits = int(self.git("rev-list", "--count", f"{base}..{head}").decode().strip() or 0)
        additions = deletions = files = 0
        out = self.git("diff", "--numstat", f"{base}...{head}").decode(errors="replace")
        for line in out.splitlines():
            added, deleted, _ = line.split("\t", 2)
            files += 1
            additions += int(added) if added.isdigit() else 0
            deletions += int(deleted) if deleted.isdigit() else 0
        return commits, additions, deletions, files
