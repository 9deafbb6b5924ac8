"""Publishing the agent's work: branch names, and pushing a git bundle as a branch.

This runs on the orchestrator, never in the sandbox: the sandbox hands over a
git bundle (its commits on top of the base commit), and :class:`Publisher`
checks it in a throw-away bare repository without hooks and pushes it with a
short-lived ``contents: write`` token that the sandbox never sees.

A push never overwrites someone else's work silently: an existing branch is
only updated when it is at the commit the caller says this run pushed before
(``expected_sha``), or when the caller owns the branch (``force=True``); in
both cases the push is made with ``--force-with-lease`` so a concurrent push
in between makes it fail instead of being lost.

Example:
    >>> branch = render_branch_name("cloud-runs/{slug}", title="Fix the flaky test", run_id="r1", issue=None)
    >>> branch
    'cloud-runs/fix-the-flaky-test'
    >>> Publisher(auth, "acme/widgets").push_bundle(bundle, base_sha=base, branch=branch)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
import re
import string
import tempfile
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cloud_runs.errors import InputError
from cloud_runs.github.app import GitIdentity, validate_repository
from cloud_runs.github.errors import (
    BranchCollisionError,
    GitError,
    GitHubPermissionError,
    NothingToPublishError,
    SecretInChangesError,
    WorkflowPermissionError,
)
from cloud_runs.github.git import git_auth_env, run_git
from cloud_runs.redact import Redactor

if TYPE_CHECKING:
    from cloud_runs.github.app import GitHubAppAuth

__all__ = [
    "DEFAULT_BRANCH_TEMPLATE",
    "PushResult",
    "Publisher",
    "branch_name_problem",
    "commit_identity_env",
    "parse_bundle_header",
    "render_branch_name",
    "slugify",
]

logger = logging.getLogger(__name__)

DEFAULT_BRANCH_TEMPLATE = "cloud-runs/{slug}"
SLUG_MAX_LENGTH = 50
WORKFLOWS_DIR = ".github/workflows/"
_SHA = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")
_PLACEHOLDERS = ("slug", "run_id", "issue")
# Characters git forbids anywhere in a ref name (besides control characters).
_FORBIDDEN_REF_CHARACTERS = set(" ~^:?*[\\")


# -- Branch names --------------------------------------------------------------


def slugify(text: str, max_length: int = SLUG_MAX_LENGTH) -> str:
    """Lower-case ASCII words joined by hyphens, at most ``max_length`` characters.

    Example:
        >>> slugify("Fix: crash when the config is empty (über edge case)")
        'fix-crash-when-the-config-is-empty-uber-edge-case'
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(slug) > max_length:
        cut = slug[:max_length]
        # Cut at a word boundary when one is reasonably close.
        slug = cut.rsplit("-", 1)[0] if "-" in cut[max_length // 2 :] else cut
    return slug.strip("-")


def branch_name_problem(name: str) -> str | None:
    """What makes ``name`` unusable as a branch, per ``git check-ref-format --branch``; None if fine.

    Example:
        >>> branch_name_problem("cloud-runs/fix")
        >>> branch_name_problem("fix..it")
        "contains '..'"
    """
    if not name:
        return "is empty"
    if name.startswith("-"):
        return "starts with '-'"
    if name == "HEAD":
        return "is HEAD"
    for character in name:
        if ord(character) < 0x20 or ord(character) == 0x7F:
            return "contains a control character"
        if character in _FORBIDDEN_REF_CHARACTERS:
            return f"contains {character!r}"
    if ".." in name:
        return "contains '..'"
    if "@{" in name:
        return "contains '@{'"
    if name.startswith("/") or name.endswith("/"):
        return "starts or ends with '/'"
    if name.endswith("."):
        return "ends with '.'"
    for component in name.split("/"):
        if not component:
            return "contains '//'"
        if component.startswith("."):
            return f"has a path component starting with '.' ({component!r})"
        if component.endswith(".lock"):
            return f"has a path component ending with '.lock' ({component!r})"
    return None


def render_branch_name(
    template: str = DEFAULT_BRANCH_TEMPLATE, *, title: str, run_id: str, issue: int | None = None
) -> str:
    """Fills a branch-name template and checks the result is a valid git branch name.

    Placeholders: ``{slug}`` (the task title as lower-case ASCII words, at most
    50 characters), ``{run_id}`` and ``{issue}``.

    Raises:
        InputError: An unknown placeholder, ``{issue}`` without an issue, or a
            result git would refuse as a branch name.

    Example:
        >>> render_branch_name("agent/{issue}-{slug}", title="Add dark mode", run_id="abc", issue=12)
        'agent/12-add-dark-mode'
    """
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise InputError(f"branch template {template!r} is malformed ({exc})", hint="balance the braces") from None
    for name in fields:
        if name not in _PLACEHOLDERS:
            raise InputError(
                f"branch template {template!r} uses unknown placeholder {{{name}}}",
                hint="use {slug}, {run_id} and {issue}",
            )
    if "issue" in fields and issue is None:
        raise InputError(
            f"branch template {template!r} uses {{issue}} but the run has no issue",
            hint="use a template without {issue} for prompt runs, e.g. cloud-runs/{slug}",
        )
    slug = slugify(title) or slugify(run_id) or "task"
    name = template.format(slug=slug, run_id=run_id, issue=issue)
    problem = branch_name_problem(name)
    if problem is not None:
        raise InputError(
            f"branch name {name!r} (from template {template!r}) {problem}",
            hint="change the branch template; git's rules: no spaces, '..', '~^:?*[\\', '@{', "
            "no component starting with '.' or ending in '.lock'",
        )
    return name


# -- Identity ------------------------------------------------------------------


def commit_identity_env(identity: GitIdentity) -> dict[str, str]:
    """Git environment that makes commits authored and committed by ``identity`` (the App's bot).

    Example:
        >>> commit_identity_env(GitIdentity("app[bot]", "1+app[bot]@users.noreply.github.com"))["GIT_AUTHOR_NAME"]
        'app[bot]'
    """
    return {
        "GIT_AUTHOR_NAME": identity.name,
        "GIT_AUTHOR_EMAIL": identity.email,
        "GIT_COMMITTER_NAME": identity.name,
        "GIT_COMMITTER_EMAIL": identity.email,
    }


# -- Bundles -------------------------------------------------------------------


@dataclass(frozen=True)
class BundleHeader:
    """What a git bundle says about itself: the commits it needs and the refs it carries."""

    prerequisites: tuple[str, ...]
    refs: Mapping[str, str]  # ref name -> sha


def parse_bundle_header(bundle: bytes) -> BundleHeader:
    """Reads the header of a v2/v3 git bundle.

    Raises:
        InputError: The bytes are not a git bundle.
    """
    head, separator, _ = bundle[:1_000_000].partition(b"\n\n")
    lines = head.decode("utf-8", errors="replace").split("\n")
    if not separator or lines[0] not in ("# v2 git bundle", "# v3 git bundle"):
        raise InputError("the agent's work is not a git bundle", hint="create it with `git bundle create`")
    prerequisites: list[str] = []
    refs: dict[str, str] = {}
    for line in lines[1:]:
        if line.startswith("@"):  # v3 capability
            continue
        if line.startswith("-"):
            prerequisites.append(line[1:].split(" ", 1)[0])
            continue
        sha, _, ref = line.partition(" ")
        if not _SHA.match(sha) or not ref:
            raise InputError("the git bundle's header is malformed", hint="create it with `git bundle create`")
        refs[ref] = sha
    if not refs:
        raise InputError("the git bundle carries no refs", hint="bundle a branch or HEAD, e.g. `base..HEAD`")
    return BundleHeader(tuple(prerequisites), refs)


# -- Publishing ----------------------------------------------------------------


@dataclass(frozen=True)
class PushResult:
    """What a push did."""

    sha: str
    branch: str
    created: bool
    updated: bool
    files_changed: list[str] = field(default_factory=list)
    diffstat: str = ""
    insertions: int = 0
    deletions: int = 0

    @property
    def touches_workflows(self) -> bool:
        return any(path.startswith(WORKFLOWS_DIR) for path in self.files_changed)


def _with_config(env: Mapping[str, str], entries: list[tuple[str, str]]) -> dict[str, str]:
    """Appends entries to an environment-only git config (GIT_CONFIG_COUNT/KEY_n/VALUE_n)."""
    merged = dict(env)
    count = int(merged.get("GIT_CONFIG_COUNT", "0"))
    for key, value in entries:
        merged[f"GIT_CONFIG_KEY_{count}"] = key
        merged[f"GIT_CONFIG_VALUE_{count}"] = value
        count += 1
    merged["GIT_CONFIG_COUNT"] = str(count)
    return merged


# Our git processes read neither the user's nor the system's config (no
# insteadOf rewrites, helpers or hooks of theirs) and run no hooks at all: the
# bundle's content is untrusted.
_ISOLATION = {"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
_ISOLATION_CONFIG = [("core.hooksPath", "/dev/null"), ("transfer.fsckObjects", "true")]
_TRANSIENT_GIT = ("returned error: 5", "rpc failed", "connection reset", "timed out", "early eof",
                  "could not resolve host", "failed to connect", "remote end hung up")


class Publisher:
    """Pushes the agent's work to one repository as a branch.

    Args:
        auth: The App's auth; write tokens are minted per push and not kept.
        repository: ``owner/name``.
        workdir: Parent directory for the temporary bare repository.
        timeout: Seconds allowed for each git command.
        remote_url: The repository's git URL; ``<web_url>/<owner>/<name>.git`` by default.
        attempts: Tries of a fetch or push that fails with a network or 5xx error.
    """

    def __init__(
        self,
        auth: GitHubAppAuth,
        repository: str,
        *,
        workdir: Path | None = None,
        timeout: float = 600,
        remote_url: str | None = None,
        attempts: int = 3,
    ) -> None:
        validate_repository(repository)
        self.auth = auth
        self.repository = repository
        self.workdir = workdir
        self.timeout = timeout
        self.remote_url = remote_url or f"{auth.web_url}/{repository}.git"
        self.attempts = attempts

    def push_bundle(
        self,
        bundle: bytes,
        *,
        base_sha: str,
        branch: str,
        force: bool = False,
        expected_sha: str | None = None,
        allow_workflows: bool = False,
        secrets: Redactor | None = None,
    ) -> PushResult:
        """Checks ``bundle`` and pushes its head to ``branch``.

        Args:
            bundle: A git bundle of the agent's commits on top of ``base_sha``.
            base_sha: The commit the sandbox cloned; the head must descend from it.
            branch: The branch to create or update.
            force: The run owns ``branch``: replace whatever is there (still
                with a lease on the commit observed just before the push).
            expected_sha: What this run pushed to ``branch`` before; an existing
                branch at that commit is updated when the new head descends from it.
            allow_workflows: Allow changes under ``.github/workflows/`` (the
                push then uses a token with ``workflows: write``).
            secrets: The run's secret values; a push whose new commits hold
                one of them (in any file, in history, or in a message) is refused.

        Returns:
            The pushed commit, whether the branch was created or updated (both
            False when it already pointed there), and the diff against the base.

        Raises:
            InputError: Bad branch, SHA or bundle, or a head not descending from ``base_sha``.
            SecretInChangesError: The new commits contain one of ``secrets``.
            NothingToPublishError: The bundle adds no commits.
            BranchCollisionError: The branch holds commits this run did not push.
            WorkflowPermissionError: The change touches workflows and that is
                not allowed or the App lacks the Workflows permission.
            GitError: git failed (stderr included, tokens redacted).
        """
        problem = branch_name_problem(branch)
        if problem is not None:
            raise InputError(f"branch name {branch!r} {problem}", hint="pick a valid git branch name")
        for label, sha in (("base_sha", base_sha), ("expected_sha", expected_sha)):
            if sha is not None and not _SHA.match(sha):
                raise InputError(f"{label} {sha!r} is not a full commit SHA", hint="pass the 40-hex commit id")
        header = parse_bundle_header(bundle)
        if header.prerequisites and base_sha not in header.prerequisites:
            raise InputError(
                f"the bundle was not made on top of the base commit {base_sha[:12]}",
                hint="create it in the sandbox with `git bundle create FILE <base_sha>..HEAD`",
            )
        head_sha = header.refs.get("HEAD") or (next(iter(header.refs.values())) if len(header.refs) == 1 else None)
        if head_sha is None:
            raise InputError(
                f"the bundle carries {len(header.refs)} refs and no HEAD", hint="bundle a single branch or HEAD"
            )
        ref = next(r for r, s in header.refs.items() if s == head_sha)

        with tempfile.TemporaryDirectory(prefix="cloud-runs-publish-", dir=self.workdir) as tmp:
            repo = Path(tmp) / "repo.git"
            plain_env = _with_config(_ISOLATION, _ISOLATION_CONFIG)
            run_git(["init", "--bare", "--quiet", str(repo)], cwd=tmp, env=plain_env, timeout=60)
            bundle_path = Path(tmp) / "work.bundle"
            bundle_path.write_bytes(bundle)

            read_env = self._env({"contents": "read"})
            if header.prerequisites:
                self._retrying(["fetch", "--quiet", "--no-tags", self.remote_url, base_sha], repo, read_env,
                               f"fetch the base commit {base_sha[:12]}")
            run_git(["bundle", "verify", "--quiet", str(bundle_path)], cwd=repo, env=plain_env, timeout=self.timeout)
            run_git(["fetch", "--quiet", "--no-tags", str(bundle_path), f"{ref}:refs/cloud-runs/head"],
                    cwd=repo, env=plain_env, timeout=self.timeout)
            # A bundle without prerequisites carries all of head's history: base must be in it.
            if not self._has_commit(repo, plain_env, base_sha) or not self._is_ancestor(
                repo, plain_env, base_sha, head_sha
            ):
                raise InputError(
                    f"the agent's head {head_sha[:12]} does not descend from the base commit {base_sha[:12]}",
                    hint="the agent must commit on top of the clone, without rewriting its history",
                )
            if head_sha == base_sha:
                raise NothingToPublishError(
                    "the agent made no commits on top of the base commit", hint="nothing to publish"
                )
            if secrets is not None:
                self._refuse_secrets(repo, plain_env, base_sha, head_sha, secrets)
            files, diffstat, insertions, deletions = self._diff(repo, plain_env, base_sha, head_sha)
            result = PushResult(
                sha=head_sha, branch=branch, created=False, updated=False, files_changed=files,
                diffstat=diffstat, insertions=insertions, deletions=deletions,
            )
            touches_workflows = result.touches_workflows
            if touches_workflows and not allow_workflows:
                raise WorkflowPermissionError(
                    f"the change modifies {WORKFLOWS_DIR} ({', '.join(p for p in files if p.startswith(WORKFLOWS_DIR))}),"
                    " which this run is not allowed to publish",
                    hint="allow workflow changes for the run, and give the GitHub App the Workflows (write) permission",
                    permission="workflows: write",
                )
            permissions = {"contents": "write"}
            if touches_workflows:
                permissions["workflows"] = "write"
            try:
                write_env = self._env(permissions)
            except GitHubPermissionError as exc:
                if touches_workflows:
                    raise WorkflowPermissionError(
                        f"the change modifies {WORKFLOWS_DIR} but the GitHub App's installation on "
                        f"{self.repository} has no Workflows (write) permission",
                        hint="grant the App the Workflows permission (read and write) and accept it on the installation",
                        permission="workflows: write",
                    ) from exc
                raise

            remote_sha = self._remote_branch_sha(repo, write_env, branch)
            if remote_sha == head_sha:
                logger.info("%s already at %s; nothing to push", branch, head_sha[:12])
                return result
            if remote_sha is not None and not force:
                self._check_update_allowed(repo, read_env, plain_env, branch, remote_sha, head_sha, expected_sha)
            # The lease: the branch must still be what we decided on (absent, or the commit we saw or expect).
            lease = (expected_sha if force and expected_sha and remote_sha else remote_sha) or ""
            self._push(repo, write_env, branch, head_sha, lease)
            created = remote_sha is None
            return dataclasses.replace(result, created=created, updated=not created)

    # -- steps ---------------------------------------------------------------

    def _env(self, permissions: dict[str, str]) -> dict[str, str]:
        token = self.auth.token(self.repository, permissions)
        env = {**_ISOLATION, **git_auth_env(token.value, self.remote_url)}
        return _with_config(env, _ISOLATION_CONFIG)

    def _retrying(self, args: list[str], repo: Path, env: dict[str, str], what: str) -> str:
        for attempt in range(1, self.attempts + 1):
            try:
                return run_git(args, cwd=repo, env=env, timeout=self.timeout)
            except GitError as exc:
                if attempt == self.attempts or not any(m in exc.stderr.lower() for m in _TRANSIENT_GIT):
                    raise
                wait = self.auth.retry.backoff(attempt)
                logger.warning("could not %s (%s); retrying in %.1fs", what, exc.stderr[-200:], wait)
                self.auth.retry.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _has_commit(repo: Path, env: dict[str, str], sha: str) -> bool:
        try:
            run_git(["cat-file", "-e", f"{sha}^{{commit}}"], cwd=repo, env=env, timeout=60)
        except GitError:
            return False
        return True

    @staticmethod
    def _is_ancestor(repo: Path, env: dict[str, str], ancestor: str, descendant: str) -> bool:
        try:
            run_git(["merge-base", "--is-ancestor", ancestor, descendant], cwd=repo, env=env, timeout=120)
        except GitError as exc:
            if exc.returncode == 1:
                return False
            raise
        return True

    def _refuse_secrets(self, repo: Path, env: dict[str, str], base: str, head: str, secrets: Redactor) -> None:
        """Reads every object the push would add (blobs of all new commits, not
        just the final tree, and their messages) and refuses any secret in them."""
        listed = run_git(["rev-list", "--objects", head, f"^{base}"], cwd=repo, env=env, timeout=self.timeout)
        names = "\n".join(line.split(" ", 1)[0] for line in listed.splitlines() if line) + "\n"
        contents = run_git(["cat-file", "--batch"], cwd=repo, env=env, timeout=self.timeout, input=names.encode())
        if secrets.contains_secret(contents):
            raise SecretInChangesError(
                "the agent's commits contain a secret value of this run (for example its model API key); "
                "nothing was pushed",
                hint="look at what the agent wrote (the run's logs); never let an agent write credentials into files",
            )

    def _diff(self, repo: Path, env: dict[str, str], base: str, head: str) -> tuple[list[str], str, int, int]:
        names = run_git(["diff", "--name-only", "-z", "--no-renames", base, head], cwd=repo, env=env,
                        timeout=self.timeout)
        files = [name for name in names.split("\0") if name]
        numstat = run_git(["diff", "--numstat", "--no-renames", base, head], cwd=repo, env=env, timeout=self.timeout)
        insertions = deletions = 0
        for line in numstat.splitlines():
            added, removed, _ = line.split("\t", 2)
            insertions += int(added) if added.isdigit() else 0  # "-" for binary files
            deletions += int(removed) if removed.isdigit() else 0
        diffstat = run_git(["diff", "--stat=100", base, head], cwd=repo, env=env, timeout=self.timeout).rstrip()
        return files, diffstat, insertions, deletions

    def _remote_branch_sha(self, repo: Path, env: dict[str, str], branch: str) -> str | None:
        out = self._retrying(["ls-remote", "--heads", self.remote_url, f"refs/heads/{branch}"], repo, env,
                             f"look up branch {branch}")
        for line in out.splitlines():
            sha, _, ref = line.partition("\t")
            if ref == f"refs/heads/{branch}":
                return sha
        return None

    def _check_update_allowed(
        self, repo: Path, read_env: dict[str, str], plain_env: dict[str, str], branch: str, remote_sha: str,
        head_sha: str, expected_sha: str | None,
    ) -> None:
        if remote_sha != expected_sha:
            raise BranchCollisionError(
                f"branch {branch} already exists in {self.repository} at {remote_sha[:12]}, "
                "which this run did not push",
                hint="use another branch name (the branch template), or delete the branch, or let the run own "
                "it (force)",
            )
        # The run pushed remote_sha before: only a fast-forward from it is an update of its own work.
        self._retrying(["fetch", "--quiet", "--no-tags", self.remote_url, remote_sha], repo, read_env,
                       f"fetch {branch}")
        if not self._is_ancestor(repo, plain_env, remote_sha, head_sha):
            raise BranchCollisionError(
                f"the new head {head_sha[:12]} does not build on {remote_sha[:12]}, which this run pushed to {branch}",
                hint="publish with force to replace the branch the run owns",
            )

    def _push(self, repo: Path, env: dict[str, str], branch: str, head_sha: str, lease: str) -> None:
        target = f"refs/heads/{branch}"
        args = ["push", "--porcelain", "--no-verify", f"--force-with-lease={target}:{lease}", self.remote_url,
                f"{head_sha}:{target}"]
        for attempt in range(1, self.attempts + 1):
            try:
                run_git(args, cwd=repo, env=env, timeout=self.timeout)
                return
            except GitError as exc:
                self._raise_refusal(exc, branch, lease)
                transient = any(m in exc.stderr.lower() for m in _TRANSIENT_GIT)
                if attempt == self.attempts or not transient:
                    raise
                # The push may have landed before the connection broke.
                if self._remote_branch_sha(repo, env, branch) == head_sha:
                    return
                wait = self.auth.retry.backoff(attempt)
                logger.warning("push of %s failed (%s); retrying in %.1fs", branch, exc.stderr[-200:], wait)
                self.auth.retry.sleep(wait)

    def _raise_refusal(self, exc: GitError, branch: str, lease: str) -> None:
        stderr = exc.stderr.lower()
        if "stale info" in stderr or "fetch first" in stderr or "already exists" in stderr:
            raise BranchCollisionError(
                f"branch {branch} in {self.repository} changed while publishing "
                f"(expected {lease[:12] or 'no branch'})",
                hint="someone else pushed to the branch; use another branch name or publish again",
            ) from None
        if "workflow" in stderr:
            raise WorkflowPermissionError(
                f"{self.repository} refused the push to {branch} because it changes {WORKFLOWS_DIR} and the "
                f"token lacks the workflows permission: {exc.stderr[-500:]}",
                hint="grant the GitHub App the Workflows permission (read and write) and accept it on the installation",
                permission="workflows: write",
            ) from None
        if "403" in stderr or "permission" in stderr or "denied" in stderr:
            raise GitHubPermissionError(
                f"{self.repository} refused the push to {branch}: {exc.stderr[-500:]}",
                hint="the App needs Contents (read and write) on the repository; branch protection may also apply",
                permission="contents: write",
            ) from None
