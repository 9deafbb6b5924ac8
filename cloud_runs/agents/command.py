"""Any agent command, given as an argv template.

The placeholders ``{prompt_file}`` (the prompt's path in the sandbox) and
``{repo_dir}`` (the repository's path) are replaced inside each argv item; the
items stay separate and no shell ever parses them. Output lines that are JSON
objects with a ``type`` of ``message``/``result``/``error`` and a ``text`` are
understood; anything else is streamed as is, and the last non-empty line
becomes the summary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from cloud_runs.agents.base import (
    PROMPT_PATH,
    AgentAdapter,
    AgentEvent,
    AgentInvocation,
    AgentOutcome,
    AgentTask,
    parse_json_line,
)
from cloud_runs.errors import InputError

PLACEHOLDERS = ("{prompt_file}", "{repo_dir}")


class CommandAdapter(AgentAdapter):
    """Runs a command template with the prompt file and repository substituted.

    Example:
        >>> from cloud_runs.agents.base import AgentTask
        >>> adapter = CommandAdapter(["my-agent", "--task={prompt_file}", "{repo_dir}"])
        >>> adapter.invocation(AgentTask(prompt="x")).argv
        ['my-agent', '--task=/tmp/cloud-runs/agent/prompt.md', '/workspace/repo']
    """

    name: ClassVar[str] = "command"

    def __init__(self, command: Sequence[str], *, secrets: Sequence[str] = ()) -> None:
        if isinstance(command, str) or not command or not all(isinstance(a, str) for a in command) or not command[0]:
            raise InputError(
                "the command agent needs its command as a non-empty list of arguments",
                hint='pass e.g. ["my-agent", "--prompt-file", "{prompt_file}", "--repo", "{repo_dir}"]',
            )
        self.command = list(command)
        self.secret_names = tuple(secrets)
        self._last_line = ""

    @property
    def required_secrets(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.secret_names

    def invocation(self, task: AgentTask) -> AgentInvocation:
        self._last_line = ""  # a reused adapter must not report the previous run's summary
        values = {"{prompt_file}": PROMPT_PATH, "{repo_dir}": task.repo_dir}

        def substitute(item: str) -> str:
            for placeholder, value in values.items():
                item = item.replace(placeholder, value)
            return item

        return AgentInvocation(
            argv=[substitute(item) for item in self.command],
            cwd=task.repo_dir,
            secret_env=self._secret_env(task),
            files=self._prompt_file(task),
        )

    def parse_line(self, line: str) -> list[AgentEvent]:
        data = parse_json_line(line)
        if data is not None and data.get("type") in ("message", "result", "error"):
            kind = data["type"]
            is_error = bool(data.get("is_error"))
            return [AgentEvent(kind, str(data.get("text") or ""), is_error=is_error, data=data)]
        if line.strip():
            self._last_line = line.strip()
        return []

    def summarize(self, events: Sequence[AgentEvent]) -> AgentOutcome:
        outcome = super().summarize(events)
        if outcome.summary:
            return outcome
        return AgentOutcome(summary=self._last_line, usage=outcome.usage, error=outcome.error)
