"""What a run leaves behind in Prefect: progress, artifacts and events.

Everything written here passes through the run's redactor first.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.events import emit_event

from cloud_runs.redact import Redactor
from cloud_runs.runs import RunResult, RunStatus

if TYPE_CHECKING:
    from flows.tasks import Target

logger = logging.getLogger(__name__)

PR_OPENED_EVENT = "cloud-runs.pull-request.opened"
PR_UPDATED_EVENT = "cloud-runs.pull-request.updated"
RUN_FAILED_EVENT = "cloud-runs.run.failed"


class Progress:
    """A progress artifact that moves as steps finish (best effort, like all reporting)."""

    def __init__(self, steps: int) -> None:
        self._steps, self._done = steps, 0
        self._id = create_progress_artifact(progress=0.0, key="cloud-run-progress", description="Steps finished")

    def advance(self, step: str, *, last: bool = False) -> None:
        self._done = self._steps if last else min(self._done + 1, self._steps)
        try:
            update_progress_artifact(self._id, progress=100.0 * self._done / self._steps, description=f"finished: {step}")
        except Exception as error:  # noqa: BLE001
            logger.warning("could not update the progress artifact: %s", type(error).__name__)


def finish(result: RunResult, target: Target | None, redactor: Redactor) -> RunResult:
    """Writes the summary artifacts and emits the run's event; returns the redacted result.

    Best effort: it also runs while a failure or cancellation propagates, and
    must not replace that error with its own.
    """
    result = RunResult.model_validate_json(redactor(result.model_dump_json()))
    try:
        if result.pull_request_url:
            create_link_artifact(link=result.pull_request_url,
                                 link_text=f"{result.repository}#{result.pull_request_number}",
                                 key="pull-request", description="The pull request this run opened or updated")
        create_markdown_artifact(markdown=redactor(summary_markdown(result, target)), key="cloud-run-summary",
                                 description="What the run did")
        _emit(result)
    except Exception as error:  # noqa: BLE001 - reporting never fails a run
        logger.warning("could not write the run's summary: %s", redactor(str(error)))
    return result


def summary_markdown(result: RunResult, target: Target | None) -> str:
    task = (target.prompt if target else "").strip()
    lines = [
        f"# Cloud run: {result.status.value.replace('_', ' ')}",
        "",
        f"- **Repository:** {result.repository} (base `{result.base_branch or '?'}`)",
        f"- **Agent:** {result.agent}",
    ]
    if result.pull_request_url:
        lines.append(f"- **Pull request:** [{result.repository}#{result.pull_request_number}]({result.pull_request_url})"
                     f" on `{result.branch}` at `{(result.head_sha or '')[:12]}`")
    if result.cost_usd is not None or result.input_tokens is not None:
        lines.append(f"- **Usage:** {result.input_tokens or 0} input / {result.output_tokens or 0} output tokens, "
                     f"${result.cost_usd or 0:.4f}")
    if result.error:
        lines += ["", "## Error", "", "```", result.error, "```"]
    lines += ["", "## Task", "", task[:4000] or "(none)", "", "## Agent summary", "", result.agent_summary or "(none)"]
    if result.diffstat:
        lines += ["", "## Changes", "", "```", result.diffstat, "```"]
    lines += ["", "## Step durations", "", "| step | seconds |", "|---|---|"]
    lines += [f"| {name} | {seconds:.2f} |" for name, seconds in result.step_seconds.items()]
    return "\n".join(lines)


def _emit(result: RunResult) -> None:
    event = {RunStatus.PR_OPENED: PR_OPENED_EVENT, RunStatus.PR_UPDATED: PR_UPDATED_EVENT,
             RunStatus.FAILED: RUN_FAILED_EVENT, RunStatus.TIMED_OUT: RUN_FAILED_EVENT,
             RunStatus.CANCELLED: RUN_FAILED_EVENT}.get(result.status)
    if event is None:
        return
    emit_event(
        event=event,
        resource={"prefect.resource.id": f"cloud-runs.repository.{result.repository}",
                  "prefect.resource.name": result.repository},
        payload=result.model_dump(mode="json", include={"status", "pull_request_url", "pull_request_number", "branch",
                                                       "head_sha", "error", "agent"}),
    )
