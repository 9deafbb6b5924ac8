"""What a run is, independent of Prefect: its validated request, its result, and
the resources it must give back.

The flow in ``flows/cloud_run.py`` is a thin story over these pieces.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cloud_runs.errors import CloudRunsError, InputError
from cloud_runs.github.app import validate_repository as validate_github_repository
from cloud_runs.github.publish import DEFAULT_BRANCH_TEMPLATE, render_branch_name

if TYPE_CHECKING:
    from cloud_runs.agents import AgentResult
    from cloud_runs.github.publish import PushResult
    from cloud_runs.github.pulls import PullRequestResult

logger = logging.getLogger(__name__)


def validate_repository(value: str) -> str:
    """Returns ``owner/name`` or raises :class:`InputError` saying what is wrong
    (GitHub's naming rules: no URL, path, ``..``, spaces or shell metacharacters)."""
    owner, name = validate_github_repository((value or "").strip())
    return f"{owner}/{name}"


class RunStatus(str, enum.Enum):
    PR_OPENED = "pr_opened"
    PR_UPDATED = "pr_updated"
    NO_CHANGES = "no_changes"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


class RunRequest(BaseModel):
    """A run's inputs, validated before anything is created or requested."""

    model_config = ConfigDict(frozen=True)

    repository: str
    prompt: str | None = None
    issue: Annotated[int, Field(gt=0)] | None = None
    base_branch: str | None = None
    branch_template: str = DEFAULT_BRANCH_TEMPLATE

    @classmethod
    def validated(cls, **fields: object) -> RunRequest:
        """Builds the request, raising the :class:`InputError` that names the bad input."""
        try:
            return cls(**fields)
        except ValidationError as error:
            first = error.errors()[0]
            original = first.get("ctx", {}).get("error")
            if isinstance(original, InputError):
                raise original from None
            where = ".".join(str(part) for part in first["loc"]) or "request"
            raise InputError(f"{where}: {first['msg']}", hint="correct that parameter") from None

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str) -> str:
        return validate_repository(value)

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str | None) -> str | None:
        return value if value and value.strip() else None

    @model_validator(mode="after")
    def _task_given(self) -> RunRequest:
        if self.prompt is None and self.issue is None:
            raise InputError("the run has no task: prompt is empty and no issue is given", hint="pass --prompt TEXT or --issue NUMBER")
        # The real title is known only after reading the issue; a sample proves
        # the template's placeholders and git's rules before any side effect.
        render_branch_name(self.branch_template, title="example task", run_id="run", issue=self.issue)
        return self


class RunResult(BaseModel):
    """What a run produced; stored as the flow run's result (no secrets)."""

    status: RunStatus
    repository: str
    branch: str | None = None
    base_branch: str | None = None
    head_sha: str | None = None
    pull_request_number: int | None = None
    pull_request_url: str | None = None
    files_changed: list[str] = Field(default_factory=list)
    diffstat: str = ""
    agent: str = ""
    agent_summary: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    error: str | None = None
    step_seconds: dict[str, float] = Field(default_factory=dict)

    def record_agent(self, outcome: AgentResult, *, base_branch: str) -> None:
        """Takes in what the agent reported; a failed or timed-out agent ends the run."""
        self.base_branch = base_branch
        self.agent_summary, self.cost_usd = outcome.summary, outcome.cost_usd
        self.input_tokens, self.output_tokens = outcome.input_tokens, outcome.output_tokens
        if not outcome.ok:
            self.status = RunStatus.TIMED_OUT if outcome.status == "timed_out" else RunStatus.FAILED
            self.error = f"the agent {outcome.status.replace('_', ' ')} (exit {outcome.exit_code}):\n{outcome.output_tail}"

    def record_publication(self, pushed: PushResult, pull: PullRequestResult) -> None:
        self.status = RunStatus.PR_OPENED if pull.created else RunStatus.PR_UPDATED
        self.branch, self.head_sha, self.files_changed, self.diffstat = (
            pushed.branch, pushed.sha, pushed.files_changed, pushed.diffstat)
        self.pull_request_number, self.pull_request_url = pull.number, pull.html_url


class RunFailed(CloudRunsError):
    """The run ended without publishing; ``result`` says how (``failed``, ``timed_out``)."""

    def __init__(self, result: RunResult) -> None:
        self.result = result
        super().__init__(result.error or f"the run ended {result.status.value}",
                         hint="see the run's logs and its cloud-run-summary artifact")


class RunResources:
    """Everything a run must give back, by run id, so that every cleanup path
    (``finally``, state hooks, signal handlers) can find and release it.

    Releasing is idempotent and each cleanup callback runs at most once.
    """

    _lock = threading.Lock()
    _by_run: dict[str, list[tuple[str, Callable[[], None]]]] = {}

    @classmethod
    def add(cls, run_id: str, name: str, release: Callable[[], None]) -> None:
        with cls._lock:
            cls._by_run.setdefault(run_id, []).append((name, release))

    @classmethod
    def release(cls, run_id: str) -> list[str]:
        """Releases the run's resources, newest first; returns what failed to release."""
        with cls._lock:
            items = cls._by_run.pop(run_id, [])
        failures = []
        for name, release in reversed(items):
            try:
                release()
            except Exception as error:  # cleanup must go on with the rest
                logger.warning("could not release %s: %s", name, type(error).__name__)
                failures.append(name)
        return failures
