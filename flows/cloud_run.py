"""The main flow: a coding task in, a pull request out.

    authenticate -> provision -> clone -> run agent -> collect -> publish -> teardown

Authentication and provisioning run concurrently; teardown runs on every path
(``finally``, and the failure/cancellation/crash hooks for the paths where the
flow body never regains control). Block names come in as parameters; secrets
are loaded inside the run and never stored as parameters or results.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from typing import Annotated

from prefect import flow, runtime
from prefect.exceptions import TerminationSignal
from prefect.states import Failed
from pydantic import Field

from blocks import load_run_blocks
from cloud_runs.agents import AgentSettings, ClaudeCodeAgent
from cloud_runs.redact import Redactor
from cloud_runs.runs import DEFAULT_BRANCH_TEMPLATE, RunFailed, RunRequest, RunResources, RunResult, RunStatus
from flows import reporting
from flows.tasks import (PublishOptions, authenticate, clone_repository, collect_changes, provision_sandbox, publish,
                         run_agent_step)


def _release_hook(flow, flow_run, state) -> None:  # noqa: ANN001 - Prefect's hook signature
    RunResources.release(str(flow_run.id))


@flow(name="cloud-run", on_failure=[_release_hook], on_cancellation=[_release_hook], on_crashed=[_release_hook])
def cloud_run(
    repository: Annotated[str, Field(description="Repository as owner/name.")],
    prompt: Annotated[str | None, Field(description="What the agent should do. Optional when an issue is given.")] = None,
    issue: Annotated[int | None, Field(gt=0, description="Issue number whose title and body become the task.")] = None,
    agent: Annotated[AgentSettings, Field(description="The coding agent and its options.")] = ClaudeCodeAgent(),
    sandbox: Annotated[str, Field(description="Sandbox block: docker/NAME, modal/NAME or local/NAME.")] = "docker/default",
    github_app: Annotated[str, Field(description="Name of the GitHub App block.")] = "default",
    agent_credentials: Annotated[str, Field(description="Name of the Agent Credentials block.")] = "default",
    base_branch: Annotated[str | None, Field(description="Branch to start from; default: the repository's.")] = None,
    branch: Annotated[str, Field(description="Branch template: {slug}, {run_id}, {issue}.")] = DEFAULT_BRANCH_TEMPLATE,
    draft: Annotated[bool, Field(description="Open the pull request as a draft.")] = False,
    labels: Annotated[list[str], Field(description="Labels for the pull request.")] = [],
    reviewers: Annotated[list[str], Field(description="Users asked to review.")] = [],
    agent_timeout_seconds: Annotated[int, Field(gt=0, description="Wall-clock limit for the agent.")] = 1800,
    force_push: Annotated[bool, Field(description="Replace the run's branch if it holds other commits.")] = False,
) -> RunResult:
    run_id = str(runtime.flow_run.id)
    request = RunRequest.validated(repository=repository, prompt=prompt, issue=issue, base_branch=base_branch,
                                   branch_template=branch)
    blocks = load_run_blocks(github_app=github_app, sandbox=sandbox, agent_credentials=agent_credentials,
                             agent=agent, agent_timeout_seconds=agent_timeout_seconds)
    redactor = Redactor([blocks.private_key, *blocks.secrets.values()])
    result = RunResult(status=RunStatus.FAILED, repository=request.repository, agent=agent.type)
    progress = reporting.Progress(steps=6)
    auth = blocks.app.get_auth()
    RunResources.add(run_id, "GitHub tokens", auth.revoke_all)
    target = None
    try:
        with _step(result, progress, "authenticate+provision"):
            target_future = authenticate.submit(auth, request, run_id)
            sandbox_future = provision_sandbox.submit(blocks.sandbox, run_id)
            target, box = target_future.result(), sandbox_future.result()
        with _step(result, progress, "clone"):
            base_sha = clone_repository(auth, box, target, redactor)
        with _step(result, progress, "agent"):
            outcome = run_agent_step(box, agent, target, blocks.secrets, blocks.endpoints, agent_timeout_seconds,
                                     redactor)
        result.record_agent(outcome, base_branch=target.base_branch)
        if outcome.ok:
            with _step(result, progress, "collect"):
                changes = collect_changes(box, target, base_sha)
            if changes.empty:
                result.status = RunStatus.NO_CHANGES
            else:
                with _step(result, progress, "publish"):
                    options = PublishOptions(agent_name=agent.type, summary=outcome.summary,
                                             run_url=runtime.flow_run.ui_url, draft=draft, labels=labels,
                                             reviewers=reviewers, force_push=force_push)
                    pushed, pull = publish(auth, target, changes, options, redactor)
                result.record_publication(pushed, pull)
    except TerminationSignal:  # cancellation reaches a flow run process as SIGTERM
        result.status, result.error = RunStatus.CANCELLED, "the run was cancelled"
        raise
    except Exception as error:
        result.error = str(error)
        raise
    finally:
        with _step(result, progress, "teardown"):
            RunResources.release(run_id)
        result = reporting.finish(result, target, redactor)
    if result.status in (RunStatus.FAILED, RunStatus.TIMED_OUT):
        return Failed(message=result.error, data=RunFailed(result))
    return result


@contextmanager
def _step(result: RunResult, progress: reporting.Progress, name: str) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        result.step_seconds[name] = round(time.monotonic() - started, 3)
        progress.advance(name, last=name == "teardown")
