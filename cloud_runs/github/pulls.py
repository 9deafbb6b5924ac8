"""Opening (or updating) the run's pull request, and commenting on issues.

Creating a pull request is not idempotent, and a POST that times out or gets
a 502 may still have created one. So the unit that is retried is *look up,
then create*: every attempt first lists the open pull requests whose head is
the branch, updates the one it finds, and only creates when there is none. A
422 "A pull request already exists" also falls back to the look-up. Retries
and follow-up runs therefore never open a second pull request for a branch.

Comments get the same treatment through a hidden marker in their body.

Example:
    >>> gh = auth.client("acme/widgets", {"pull_requests": "write"})  # doctest: +SKIP
    >>> pr = open_or_update_pull_request(gh, "acme/widgets", head="cloud-runs/fix", base="main",
    ...                                  title="Fix", body="...")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cloud_runs.errors import InputError
from cloud_runs.github.app import validate_repository
from cloud_runs.github.errors import GitHubValidationError
from cloud_runs.github.retry import RetryPolicy

if TYPE_CHECKING:
    import github
    from github.PullRequest import PullRequest

__all__ = [
    "PullRequestResult",
    "comment_on_issue",
    "open_or_update_pull_request",
    "render_pull_request_body",
]

logger = logging.getLogger(__name__)

# GitHub's limit for issue and pull request bodies.
MAX_BODY_LENGTH = 65536
_TRUNCATED = "\n\n… (truncated)"


@dataclass(frozen=True)
class PullRequestResult:
    """The pull request a run opened or updated."""

    number: int
    url: str
    html_url: str
    created: bool
    head_sha: str


def _find_open(repo: Any, owner: str, head: str) -> PullRequest | None:
    for pull in repo.get_pulls(state="open", head=f"{owner}:{head}"):
        if pull.head.ref == head:
            return pull
    return None


def open_or_update_pull_request(
    client: github.Github,
    repository: str,
    *,
    head: str,
    base: str,
    title: str,
    body: str,
    draft: bool = False,
    labels: Sequence[str] = (),
    reviewers: Sequence[str] = (),
    retry: RetryPolicy | None = None,
) -> PullRequestResult:
    """Opens a pull request from ``head`` into ``base``, or updates the open one.

    Args:
        client: A PyGithub client with ``pull_requests: write`` (and
            ``issues: write`` for labels) on ``repository``.
        repository: ``owner/name``.
        head: The branch with the work (in ``repository`` itself).
        base: The branch to merge into.
        title: Pull request title.
        body: Pull request body (Markdown); cut to GitHub's 65536 characters.
        draft: Open as a draft (a new pull request only).
        labels: Labels to add.
        reviewers: Users to request reviews from.
        retry: Retry policy; the default retries network errors, 5xx and rate limits.

    Returns:
        The pull request, and whether this call created it.

    Raises:
        InputError: Empty title, bad repository or branch names.
        GitHubError: GitHub refused (e.g. the App lacks ``pull_requests: write``).
    """
    owner, _ = validate_repository(repository)
    if not title.strip():
        raise InputError("the pull request title is empty", hint="pass the task's title")
    if not head or not base or head == base:
        raise InputError(f"cannot open a pull request from {head!r} into {base!r}", hint="pass two different branches")
    policy = retry or RetryPolicy()
    body = _fit(body)
    created = False

    def find_or_create() -> PullRequest:
        nonlocal created
        import github as gh

        repo = client.get_repo(repository)
        existing = _find_open(repo, owner, head)
        if existing is None:
            try:
                pull = repo.create_pull(base=base, head=head, title=title, body=body, draft=draft)
            except gh.GithubException as exc:
                # Created by an earlier attempt whose answer we lost, or by a concurrent run.
                already = exc.status == 422 and "already exists" in str(exc.data).lower()
                existing = _find_open(repo, owner, head) if already else None
                if existing is None:
                    raise
            else:
                created = True
                return pull
        if existing.title != title or (existing.body or "") != body or existing.base.ref != base:
            existing.edit(title=title, body=body, base=base)
        return existing

    pull = policy.call(
        find_or_create, action=f"open a pull request for {head} in {repository}", permission="pull_requests: write"
    )
    if labels:
        policy.call(lambda: pull.add_to_labels(*labels), action=f"label pull request #{pull.number}",
                    permission="issues: write")
    if reviewers:
        try:
            policy.call(lambda: pull.create_review_request(reviewers=list(reviewers)),
                        action=f"request reviews on #{pull.number}", permission="pull_requests: write")
        except GitHubValidationError as exc:
            # A reviewer who is not a collaborator (or the PR's author) is not worth failing the run for.
            logger.warning("could not request reviewers on #%d: %s", pull.number, exc.message)
    logger.info("%s pull request #%d in %s", "opened" if created else "updated", pull.number, repository)
    return PullRequestResult(
        number=pull.number, url=pull.url, html_url=pull.html_url, created=created, head_sha=pull.head.sha
    )


def _fit(text: str, limit: int = MAX_BODY_LENGTH) -> str:
    return text if len(text) <= limit else text[: limit - len(_TRUNCATED)] + _TRUNCATED


def render_pull_request_body(
    *,
    summary: str,
    diffstat: str,
    issue: int | None,
    run_url: str | None,
    agent: str,
    redact: Callable[[str], str] | None = None,
) -> str:
    """The pull request description.

    Args:
        summary: The agent's account of what it did (Markdown).
        diffstat: ``git diff --stat`` of the change.
        issue: The issue the run came from; adds ``Closes #N`` so merging closes it.
        run_url: Link back to the run (the Prefect flow run page).
        agent: The agent's name.
        redact: Applied to the agent-written parts (summary, diffstat).

    Example:
        >>> print(render_pull_request_body(summary="Fixed it.", diffstat="", issue=7, run_url=None, agent="codex"))
        Fixed it.
        <BLANKLINE>
        Closes #7
        <BLANKLINE>
        ---
        <sub>Opened by Cloud Runs with the codex agent.</sub>
    """
    clean = redact or (lambda text: text)
    parts = [clean(summary.strip()) or "_The agent left no summary._"]
    if issue is not None:
        parts.append(f"Closes #{int(issue)}")
    if diffstat.strip():
        fence = "````" if "```" in diffstat else "```"
        parts.append(f"<details><summary>Changes</summary>\n\n{fence}\n{clean(diffstat.rstrip())}\n{fence}\n</details>")
    footer = f"Opened by Cloud Runs with the {agent} agent"
    footer += f" · [run]({run_url})." if run_url else "."
    parts.append(f"---\n<sub>{footer}</sub>")
    body = "\n\n".join(parts)
    if len(body) > MAX_BODY_LENGTH:
        # Keep the footer and the closing keyword; shorten the summary.
        tail = "\n\n".join(parts[1:])
        room = MAX_BODY_LENGTH - len(tail) - len(_TRUNCATED) - 2
        body = parts[0][: max(room, 0)] + _TRUNCATED + "\n\n" + tail
    return body


def comment_on_issue(
    client: github.Github,
    repository: str,
    issue: int,
    body: str,
    *,
    key: str | None = None,
    retry: RetryPolicy | None = None,
) -> str:
    """Posts a comment on an issue (or pull request) once; returns its URL.

    The comment carries a hidden ``<!-- cloud-runs:KEY -->`` marker (``key``
    defaults to a hash of the body). A retry, or a second call with the same
    key, finds the marked comment and updates it instead of posting again.

    Raises:
        GitHubError: GitHub refused (e.g. the App lacks ``issues: write``).
    """
    validate_repository(repository)
    if not body.strip():
        raise InputError("the comment is empty", hint="pass the comment text")
    policy = retry or RetryPolicy()
    marker = f"<!-- cloud-runs:{key or hashlib.sha256(body.encode()).hexdigest()[:16]} -->"
    full_body = _fit(body, MAX_BODY_LENGTH - len(marker) - 1) + "\n" + marker

    def find_or_post() -> str:
        target = client.get_repo(repository).get_issue(int(issue))
        for comment in target.get_comments():
            if marker in (comment.body or ""):
                if comment.body != full_body:
                    comment.edit(full_body)
                return comment.html_url
        return target.create_comment(full_body).html_url

    return policy.call(find_or_post, action=f"comment on #{issue} in {repository}", permission="issues: write")
