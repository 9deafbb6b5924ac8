"""The steps of a cloud run as Prefect tasks, each with the retry policy its
side effects allow. The logic lives in Prefect-free modules of ``cloud_runs``.

Tasks that take clients or sandboxes use ``NO_CACHE``: those objects cannot be
hashed, and a step that touches the outside world must never be skipped by a
cache hit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from github import GithubException
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from cloud_runs import workspace
from cloud_runs.agents import AgentResult, AgentSettings, AgentTask, run_agent
from cloud_runs.errors import ConfigurationError, InputError, ProductionRefusal
from cloud_runs.github.app import GitHubAppAuth, GitIdentity
from cloud_runs.github.errors import (BranchCollisionError, GitHubAuthenticationError, GitHubNotFoundError,
                                      GitHubPermissionError, SecretInChangesError)
from cloud_runs.github.publish import Publisher, PushResult, commit_identity_env, render_branch_name
from cloud_runs.github.pulls import PullRequestResult, comment_on_issue, open_or_update_pull_request, render_pull_request_body
from cloud_runs.redact import Redactor
from cloud_runs.runs import RunRequest, RunResources
from cloud_runs.sandboxes import Sandbox, SandboxSettings

PERMANENT_ERRORS = (InputError, ConfigurationError, BranchCollisionError, GitHubAuthenticationError,
                    GitHubPermissionError, GitHubNotFoundError, ProductionRefusal, SecretInChangesError)
READ_REPOSITORY = {"contents": "read", "metadata": "read"}
READ_ISSUES = {**READ_REPOSITORY, "issues": "read"}
CLONE = {"contents": "read"}
PUBLISH = {"contents": "write", "pull_requests": "write"}
COMMENT = {"issues": "write"}


def _transient(task, task_run, state) -> bool:  # noqa: ANN001 - Prefect's retry_condition_fn signature
    """Retry only what another attempt can fix: not bad input, missing
    permissions, missing installations or a branch collision."""
    error = state.result(raise_on_failure=False)
    return not isinstance(error, PERMANENT_ERRORS)


@dataclass(frozen=True)
class PublishOptions:
    """How the run's work is published."""

    agent_name: str
    summary: str
    run_url: str | None
    draft: bool = False
    labels: Sequence[str] = ()
    reviewers: Sequence[str] = ()
    force_push: bool = False


@dataclass(frozen=True)
class Target:
    """Where the run works and on what: resolved from GitHub before any sandbox work.

    ``existing_sha`` is the tip of the run's branch when it exists already; the
    run then starts from there instead of ``base_branch``.
    """

    repository: str
    clone_url: str
    base_branch: str
    branch: str
    existing_sha: str | None
    title: str
    prompt: str
    issue: int | None
    identity: GitIdentity


class _RedactingLogger:
    """The run logger, with every message passed through the run's redactor."""

    def __init__(self, redactor: Redactor) -> None:
        self._logger = get_run_logger()
        self._redact = redactor

    def info(self, message: str) -> None:
        self._logger.info(self._redact(message))

    def warning(self, message: str) -> None:
        self._logger.warning(self._redact(message))


@task(name="authenticate", retries=3, retry_delay_seconds=exponential_backoff(2), retry_jitter_factor=0.5,
      retry_condition_fn=_transient, cache_policy=NO_CACHE)
def authenticate(auth: GitHubAppAuth, request: RunRequest, run_id: str) -> Target:
    """Finds the installation, the base branch, the task text, the run's branch and the bot identity.

    When the run's branch exists already (a follow-up run for the same task),
    the run continues from its tip, so the push fast-forwards and the open PR
    is updated instead of duplicated.
    """
    client = auth.client(request.repository, READ_ISSUES if request.issue else READ_REPOSITORY)
    repo = client.get_repo(request.repository)
    prompt = request.prompt or ""
    title = prompt.strip().splitlines()[0][:72] if prompt else ""
    if request.issue is not None:
        issue = repo.get_issue(request.issue)
        title = issue.title
        prompt = "\n\n".join(part for part in (issue.title, issue.body or "", request.prompt or "") if part.strip())
    branch = render_branch_name(request.branch_template, title=title, run_id=run_id, issue=request.issue)
    try:
        existing_sha: str | None = repo.get_branch(branch).commit.sha
    except GithubException as error:
        if error.status != 404:
            raise
        existing_sha = None
    return Target(
        repository=request.repository,
        clone_url=repo.clone_url,
        base_branch=request.base_branch or repo.default_branch,
        branch=branch,
        existing_sha=existing_sha,
        title=title,
        prompt=prompt,
        issue=request.issue,
        identity=auth.bot_identity(),
    )


@task(name="provision-sandbox", retries=2, retry_delay_seconds=exponential_backoff(3), retry_jitter_factor=0.5,
      retry_condition_fn=_transient, cache_policy=NO_CACHE)
def provision_sandbox(settings: SandboxSettings, run_id: str) -> Sandbox:
    """Starts the sandbox; registered for teardown before anything else can fail."""
    sandbox = settings.create(run_id=run_id)
    RunResources.add(run_id, f"{sandbox.provider} sandbox", sandbox.destroy)
    get_run_logger().info("sandbox %s (%s) is up", sandbox.id, sandbox.provider)
    return sandbox


@task(name="clone", retries=2, retry_delay_seconds=exponential_backoff(2), retry_jitter_factor=0.5,
      retry_condition_fn=_transient, cache_policy=NO_CACHE)
def clone_repository(auth: GitHubAppAuth, sandbox: Sandbox, target: Target, redactor: Redactor) -> str:
    """Clones with a read-only token minted for this clone alone and revoked right after."""
    log = _RedactingLogger(redactor)
    token = auth.token(target.repository, CLONE)
    redactor.add(token.value)
    try:
        start = target.branch if target.existing_sha else target.base_branch
        base_sha = workspace.clone(sandbox, clone_url=target.clone_url, token=token.value, branch=start,
                                   on_output=lambda _stream, line: log.info(line))
    finally:
        auth.revoke(token)
    log.info(f"cloned {target.repository}@{start} at {base_sha[:12]}; clone token revoked")
    return base_sha


@task(name="run-agent", retries=0, cache_policy=NO_CACHE)
def run_agent_step(sandbox: Sandbox, agent: AgentSettings, target: Target, secrets: dict[str, str],
                   endpoints: dict[str, str], timeout_seconds: float, redactor: Redactor) -> AgentResult:
    """Runs the agent once; no blind retry (it may have done half its work)."""
    log = _RedactingLogger(redactor)
    adapter = agent.adapter()
    task_spec = AgentTask(prompt=target.prompt, repo_dir=workspace.REPO_DIR,
                          secrets={name: secrets[name] for name in adapter.required_secrets if name in secrets},
                          env=endpoints, timeout_seconds=timeout_seconds)
    return run_agent(sandbox, adapter, task_spec, redactor=redactor, on_line=lambda _stream, line: log.info(line))


@task(name="collect-changes", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE)
def collect_changes(sandbox: Sandbox, target: Target, base_sha: str) -> workspace.Changes:
    """Takes the agent's commits (committing what it left uncommitted) out as a git bundle."""
    return workspace.collect(sandbox, base_sha=base_sha, identity_env=commit_identity_env(target.identity),
                             message=f"{target.title}\n\nChanges made by a Cloud Runs agent.")


@task(name="publish", retries=3, retry_delay_seconds=exponential_backoff(2), retry_jitter_factor=0.5,
      retry_condition_fn=_transient, cache_policy=NO_CACHE)
def publish(auth: GitHubAppAuth, target: Target, changes: workspace.Changes, options: PublishOptions,
            redactor: Redactor) -> tuple[PushResult, PullRequestResult]:
    """Pushes the branch from the orchestrator and opens or updates its PR; idempotent."""
    assert changes.bundle is not None
    granted = auth.app().get("permissions", {})
    pushed = Publisher(auth, target.repository).push_bundle(
        changes.bundle, base_sha=changes.base_sha, branch=target.branch, force=options.force_push,
        expected_sha=target.existing_sha, allow_workflows=granted.get("workflows") == "write", secrets=redactor)
    body = render_pull_request_body(summary=options.summary, diffstat=pushed.diffstat, issue=target.issue,
                                    run_url=options.run_url, agent=options.agent_name, redact=redactor)
    pull = open_or_update_pull_request(auth.client(target.repository, PUBLISH), target.repository, head=target.branch,
                                       base=target.base_branch, title=target.title, body=body, draft=options.draft,
                                       labels=options.labels, reviewers=options.reviewers)
    if target.issue is not None and granted.get("issues") == "write":  # posted once per PR (marked)
        comment_on_issue(auth.client(target.repository, COMMENT), target.repository, target.issue,
                         f"Cloud Runs opened {pull.html_url} for this issue.")
    return pushed, pull
