"""`issue-watch`: labelled issues become cloud runs, one run per issue.

On a schedule, the flow lists the open issues carrying ``label`` in each
configured repository and starts one ``cloud-run`` per issue through a
deployment (``cloud-run/docker`` by default), with the issue as the task.

Who may start a run: the issue's text becomes the agent's instructions, so only
issues whose AUTHOR can write to the repository are accepted: author
association OWNER, MEMBER or COLLABORATOR, confirmed by the collaborator
permission endpoint (admin, maintain or write), because GitHub also calls a
read-only collaborator COLLABORATOR. Other issues get one comment saying why
and the ``cloud-runs:ignored`` label.

Never twice, even when watch runs overlap (the claim, in order):

1. Under a Prefect global concurrency limit of one slot
   (``cloud-runs-issue-watch``), the issue is re-read. The slot is granted
   atomically by the Prefect server, so claim sections of every watch run
   against that server run one at a time, and the re-read sees the marks of
   any section before it (the issue is skipped once marked).
2. The run is created with ``idempotency_key="issue-watch:<repo>#<n>"``. The
   server keeps one flow run per (flow, idempotency key) - a database
   constraint - and hands back the existing run to any later request. This
   holds even where step 1 does not (a lease that expired while its holder
   stalled, a limit deleted by hand): at worst the issue is marked twice,
   never run twice.
3. Only then is the issue marked: ``cloud-runs:started`` added, the trigger
   label removed, a comment linking the run. A crash between 2 and 3 leaves
   the trigger label in place; the next tick gets the same run back from
   step 2 and marks the issue then.

Running an issue again: remove nothing and start it by hand, e.g.
``prefect deployment run cloud-run/docker --param repository=o/r --param issue=7``.

Example:
    ```bash
    prefect deployment run issue-watch/local \\
        --param 'repositories=["acme/widgets"]' --param deployment=cloud-run/docker
    ```
"""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field

from cloud_runs.agents import AgentSettings
from cloud_runs.errors import InputError
from cloud_runs.runs import validate_repository

#: Global concurrency limit that serializes claims across watch runs.
CLAIM_LIMIT = "cloud-runs-issue-watch"
STARTED_LABEL = "cloud-runs:started"
IGNORED_LABEL = "cloud-runs:ignored"
IGNORED_MARKER = "<!-- cloud-runs:ignored -->"
STARTED_MARKER = "<!-- cloud-runs:started -->"
WRITE_ASSOCIATIONS = frozenset({"OWNER", "MEMBER", "COLLABORATOR"})
WRITE_PERMISSIONS = frozenset({"admin", "maintain", "write"})
#: Token permissions of the watch: read issues and permissions, label and comment.
WATCH_PERMISSIONS = {"issues": "write", "metadata": "read"}
CLAIM_TIMEOUT_SECONDS = 120


class StartedRun(BaseModel):
    repository: str
    issue: int
    flow_run_id: str
    flow_run_name: str


class IgnoredIssue(BaseModel):
    repository: str
    issue: int
    author: str
    reason: str


class WatchReport(BaseModel):
    """What one watch run did."""

    started: list[StartedRun] = Field(default_factory=list)
    ignored: list[IgnoredIssue] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list, description="Issues another watch run claimed first.")


@flow(name="issue-watch", log_prints=False)
def issue_watch(
    repositories: Annotated[list[str], Field(description="Repositories to watch, as owner/name.")],
    label: Annotated[str, Field(min_length=1, description="Issues with this label become runs.")] = "cloud-runs",
    github_app: Annotated[str, Field(description="GitHub App block the watch and its runs use.")] = "default",
    deployment: Annotated[str, Field(description="The cloud-run deployment that runs each issue (flow/deployment).")] = "cloud-run/docker",
    agent: Annotated[AgentSettings | None, Field(description="Agent for the runs; the deployment's default when empty.")] = None,
    sandbox: Annotated[str | None, Field(description="Sandbox block (provider/name); the deployment's default when empty.")] = None,
    agent_credentials: Annotated[str | None, Field(description="Agent Credentials block; the deployment's default when empty.")] = None,
    parameters: Annotated[dict[str, Any], Field(description="Further cloud_run parameters (labels, draft, ...).")] = {},
) -> WatchReport:
    """Starts one cloud run per labelled issue whose author can write; see the module docstring."""
    from blocks import GitHubApp

    repositories = [validate_repository(repository) for repository in repositories]
    if deployment.count("/") != 1 or not all(deployment.split("/")):
        raise InputError(f"deployment {deployment!r} is not of the form flow/deployment",
                         hint="pass e.g. cloud-run/docker (see `prefect deployment ls`)")
    if label in (STARTED_LABEL, IGNORED_LABEL):
        raise InputError(f"label {label!r} is one the watch sets itself", hint="use another label, e.g. cloud-runs")
    run_parameters = {**parameters, "github_app": github_app}
    if agent is not None:
        run_parameters["agent"] = agent.model_dump(mode="json")
    if sandbox is not None:
        run_parameters["sandbox"] = sandbox
    if agent_credentials is not None:
        run_parameters["agent_credentials"] = agent_credentials
    for reserved in ("repository", "issue", "prompt"):
        run_parameters.pop(reserved, None)

    auth = GitHubApp.load(github_app).get_auth()
    _ensure_claim_limit()
    report = WatchReport()
    try:
        for repository in repositories:
            _watch_repository(auth, repository, label, deployment, run_parameters, report)
    finally:
        auth.revoke_all()
    create_markdown_artifact(markdown=_report_markdown(report, label), key="issue-watch",
                             description="Issues started, ignored and skipped")
    return report


def _watch_repository(auth, repository: str, label: str, deployment: str,  # noqa: ANN001
                      run_parameters: dict[str, Any], report: WatchReport) -> None:
    log = get_run_logger()
    repo = auth.client(repository, WATCH_PERMISSIONS).get_repo(repository)
    for issue in repo.get_issues(state="open", labels=[label]):
        if issue.pull_request is not None:
            continue
        names = {existing.name for existing in issue.labels}
        if STARTED_LABEL in names or IGNORED_LABEL in names:
            continue
        author = issue.user.login
        refusal = _refusal(repo, issue, author)
        with _claim():
            fresh = repo.get_issue(issue.number)  # what earlier claim sections left
            fresh_names = {existing.name for existing in fresh.labels}
            if fresh.state != "open" or label not in fresh_names or fresh_names & {STARTED_LABEL, IGNORED_LABEL}:
                report.skipped.append(f"{repository}#{issue.number}")
                continue
            if refusal:
                _ignore(fresh, refusal)
                report.ignored.append(IgnoredIssue(repository=repository, issue=issue.number, author=author, reason=refusal))
                log.info("ignored %s#%s: %s", repository, issue.number, refusal)
                continue
            flow_run = _start(deployment, repository, issue.number, run_parameters)
            _mark_started(fresh, label, flow_run)
        report.started.append(StartedRun(repository=repository, issue=issue.number, flow_run_id=str(flow_run.id),
                                         flow_run_name=flow_run.name))
        log.info("started %s for %s#%s", flow_run.name, repository, issue.number)


def _refusal(repo, issue, author: str) -> str | None:  # noqa: ANN001
    """Why ``author`` may not start a run, or None when they may."""
    association = issue.raw_data.get("author_association", "NONE")
    if association not in WRITE_ASSOCIATIONS:
        return f"its author @{author} is not a collaborator of {repo.full_name} (association {association})"
    permission = repo.get_collaborator_permission(author)
    if permission not in WRITE_PERMISSIONS:
        return f"its author @{author} has {permission} access to {repo.full_name}, not write"
    return None


def _claim():
    """The claim section: one at a time across every watch run on this Prefect server."""
    from prefect.concurrency.sync import concurrency

    return concurrency(CLAIM_LIMIT, occupy=1, timeout_seconds=CLAIM_TIMEOUT_SECONDS, strict=True)


def _ensure_claim_limit() -> None:
    """Creates the one-slot global concurrency limit if it is missing (idempotent)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(CLAIM_LIMIT)
            return
        except ObjectNotFound:
            pass
        try:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=CLAIM_LIMIT, limit=1))
        except ObjectAlreadyExists:
            pass  # another watch run created it a moment ago


def _start(deployment: str, repository: str, issue: int, run_parameters: dict[str, Any]):  # noqa: ANN202
    from prefect.deployments import run_deployment

    return run_deployment(
        deployment,
        parameters={**run_parameters, "repository": repository, "issue": issue},
        idempotency_key=f"issue-watch:{repository}#{issue}",
        timeout=0,  # start it and move on; the run reports on the issue itself
        tags=["issue-watch"],
    )


def _mark_started(issue, label: str, flow_run) -> None:  # noqa: ANN001
    from github import GithubException

    issue.add_to_labels(STARTED_LABEL)
    try:
        issue.remove_from_labels(label)
    except GithubException as error:
        if error.status != 404:  # already removed
            raise
    issue.create_comment(f"{STARTED_MARKER}\nCloud Runs started the flow run `{flow_run.name}` "
                         f"(id `{flow_run.id}`) for this issue. It comments here with the pull request when it opens one.")


def _ignore(issue, reason: str) -> None:  # noqa: ANN001
    if not any(IGNORED_MARKER in (comment.body or "") for comment in issue.get_comments()):
        issue.create_comment(
            f"{IGNORED_MARKER}\nCloud Runs ignores this issue: {reason}. The issue's text becomes the agent's "
            "instructions, so only issues written by people with write access start runs. A maintainer can start "
            "one by hand (`prefect deployment run cloud-run/docker --param repository=... --param issue=...`).")
    issue.add_to_labels(IGNORED_LABEL)


def _report_markdown(report: WatchReport, label: str) -> str:
    lines = [f"# Issue watch (label `{label}`)", ""]
    lines += [f"- started `{run.flow_run_name}` for {run.repository}#{run.issue}" for run in report.started]
    lines += [f"- ignored {item.repository}#{item.issue}: {item.reason}" for item in report.ignored]
    lines += [f"- skipped {item} (claimed by another watch run)" for item in report.skipped]
    if len(lines) == 2:
        lines.append("Nothing to do.")
    return "\n".join(lines)
