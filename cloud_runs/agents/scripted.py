"""The scripted agent: a deterministic recipe run by :mod:`cloud_runs.agents.scripted_agent`.

The recipe's steps are validated here (before anything reaches a sandbox),
then shipped with the stdlib-only script and run with ``python3``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from pathlib import PurePosixPath
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from cloud_runs.agents.base import (
    AGENT_DIR,
    PROMPT_PATH,
    AgentAdapter,
    AgentEvent,
    AgentInvocation,
    AgentTask,
    parse_json_line,
)
from cloud_runs.errors import InputError

SCRIPT_PATH = f"{AGENT_DIR}/scripted_agent.py"
RECIPE_PATH = f"{AGENT_DIR}/recipe.json"


def _repo_relative(path: str) -> str:
    parts = PurePosixPath(path).parts
    if not path or path.startswith("/") or ".." in parts or (parts and parts[0] == ".git") or "\x00" in path:
        raise ValueError(f"{path!r} must be a relative path inside the repository, outside .git")
    return path


RepoPath = Annotated[str, Field(min_length=1, description="Path relative to the repository.")]


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _PathStep(_Step):
    path: RepoPath

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        return _repo_relative(value)


class WriteStep(_PathStep):
    """Create or overwrite a file."""

    action: Literal["write"] = "write"
    content: str = ""
    executable: bool = False


class EditStep(_PathStep):
    """Replace every occurrence of ``old`` with ``new`` (fails when ``old`` is absent)."""

    action: Literal["edit"] = "edit"
    old: str = Field(min_length=1)
    new: str = ""


class DeleteStep(_PathStep):
    """Remove a file or directory."""

    action: Literal["delete"] = "delete"


class RenameStep(_PathStep):
    """Move ``path`` to ``to``."""

    action: Literal["rename"] = "rename"
    to: RepoPath

    @field_validator("to")
    @classmethod
    def _check_to(cls, value: str) -> str:
        return _repo_relative(value)


class ChmodStep(_PathStep):
    """Set (or clear) the execute bits."""

    action: Literal["chmod"] = "chmod"
    executable: bool = True


class RunStep(_Step):
    """Run a command in the repository (argv, no shell); a failure fails the agent unless allowed."""

    action: Literal["run"] = "run"
    argv: list[str] = Field(min_length=1)
    allow_failure: bool = False


class CommitStep(_Step):
    """Stage everything and commit."""

    action: Literal["commit"] = "commit"
    message: str = Field(min_length=1)
    allow_empty: bool = False


class FailStep(_Step):
    """Stop with an exit code and a message."""

    action: Literal["fail"] = "fail"
    exit_code: int = Field(default=1, ge=1, le=255)
    message: str = "the recipe says to fail"


class HangStep(_Step):
    """Sleep, to exercise timeouts."""

    action: Literal["hang"] = "hang"
    seconds: float = Field(default=3600, gt=0)


class SayStep(_Step):
    """Print a message; the last one becomes the summary."""

    action: Literal["say"] = "say"
    text: str


ScriptedStep = Annotated[
    WriteStep | EditStep | DeleteStep | RenameStep | ChmodStep | RunStep | CommitStep | FailStep | HangStep | SayStep,
    Field(discriminator="action"),
]
_STEPS = TypeAdapter(list[ScriptedStep])


def script_source() -> bytes:
    """The bytes of the scripted agent's script, as shipped into sandboxes."""
    return resources.files("cloud_runs.agents").joinpath("scripted_agent.py").read_bytes()


class ScriptedAdapter(AgentAdapter):
    """Runs ``python3 scripted_agent.py recipe.json`` in the repository.

    Example:
        >>> adapter = ScriptedAdapter([{"action": "say", "text": "done"}])
        >>> adapter.invocation(AgentTask(prompt="x")).argv
        ['python3', '/tmp/cloud-runs/agent/scripted_agent.py', '/tmp/cloud-runs/agent/recipe.json', '--prompt-file', '/tmp/cloud-runs/agent/prompt.md']
    """

    name: ClassVar[str] = "scripted"

    def __init__(self, steps: Sequence[ScriptedStep | dict], *, python: str = "python3") -> None:
        try:
            self.steps = _STEPS.validate_python(list(steps))
        except ValidationError as error:
            problems = "; ".join(f"step {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            raise InputError(
                f"the scripted agent's recipe is invalid: {problems}",
                hint="fix the steps (see cloud_runs.agents.scripted_agent for every action and its fields)",
            ) from None
        self.python = python

    def invocation(self, task: AgentTask) -> AgentInvocation:
        recipe = {"steps": [step.model_dump() for step in self.steps]}
        return AgentInvocation(
            argv=[self.python, SCRIPT_PATH, RECIPE_PATH, "--prompt-file", PROMPT_PATH],
            cwd=task.repo_dir,
            env={"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"},
            files={
                **self._prompt_file(task),
                SCRIPT_PATH: script_source(),
                RECIPE_PATH: json.dumps(recipe, ensure_ascii=False).encode("utf-8"),
            },
        )

    def parse_line(self, line: str) -> list[AgentEvent]:
        data = parse_json_line(line)
        if data is None:
            return []
        kind = data.get("type")
        if kind == "start":
            return [AgentEvent("init", f"{data.get('steps', 0)} steps", data=data)]
        if kind == "message":
            return [AgentEvent("message", str(data.get("text", "")), data=data)]
        if kind == "step":
            return [AgentEvent("tool", f"{data.get('action')} {data.get('path') or ''}".strip(), data=data)]
        if kind == "command":
            return [AgentEvent("tool_result", f"exit {data.get('exit_code')}", is_error=data.get("exit_code") != 0, data=data)]
        if kind == "commit":
            return [AgentEvent("tool_result", f"committed {data.get('sha', '')[:12]}", data=data)]
        if kind == "result":
            return [AgentEvent("result", str(data.get("summary", "")), data=data)]
        if kind == "error":
            return [AgentEvent("error", str(data.get("message", "")), data=data)]
        return []
