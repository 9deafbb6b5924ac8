"""Claude Code (``@anthropic-ai/claude-code``) in headless print mode.

Written against Claude Code 2.1.332 (``claude --help`` of that version):

* ``claude -p`` without a prompt argument reads the prompt from stdin; we feed
  it the prompt file through :func:`~cloud_runs.agents.base.stdin_from_file`,
  so prompts of any length and content arrive unchanged.
* ``--output-format stream-json`` prints one JSON object per line; in print
  mode it requires ``--verbose``. Lines: ``system`` (subtype ``init``: session,
  model, cwd, tools), ``assistant`` (a message whose ``content`` holds ``text``,
  ``thinking`` and ``tool_use`` blocks), ``user`` (``tool_result`` blocks),
  and a final ``result`` (``subtype`` ``success`` or ``error_*``, ``is_error``,
  ``result`` text, ``num_turns``, ``total_cost_usd``, ``usage`` with
  ``input_tokens``, ``cache_creation_input_tokens``, ``cache_read_input_tokens``,
  ``output_tokens``).
* ``--dangerously-skip-permissions``: the sandbox is the isolation boundary,
  and nobody is there to answer a permission prompt.
* ``ANTHROPIC_API_KEY`` authenticates; ``ANTHROPIC_BASE_URL`` (optional, in
  the task's env) points it at another endpoint.

Input tokens are reported as the sum of fresh, cache-write and cache-read
input tokens: what the model actually read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from cloud_runs.agents.base import (
    PROMPT_PATH,
    AgentAdapter,
    AgentEvent,
    AgentInvocation,
    AgentTask,
    AgentUsage,
    json_int,
    json_number,
    parse_json_line,
    stdin_from_file,
)



#: No telemetry, auto-updates or other background traffic from Claude Code (or
#: the Claude Agent SDK under @posthog/agent) inside the sandbox.
QUIET_CLAUDE_ENV = {"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1"}


def claude_usage(usage: Mapping[str, Any] | None, cost: Any = None) -> AgentUsage:
    """Anthropic ``usage`` (plus cost) as :class:`AgentUsage`; cache reads count as input."""
    usage = usage or {}
    parts = [json_int(usage.get(k)) for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")]
    known = [p for p in parts if p is not None]
    return AgentUsage(
        input_tokens=sum(known) if known else None,
        output_tokens=json_int(usage.get("output_tokens")),
        cost_usd=json_number(cost),
    )


class ClaudeCodeAdapter(AgentAdapter):
    """Runs ``claude -p --output-format stream-json --verbose`` in the repository.

    Example:
        >>> from cloud_runs.agents.base import AgentTask
        >>> task = AgentTask(prompt="fix it", secrets={"ANTHROPIC_API_KEY": "sk-ant-x"})
        >>> ClaudeCodeAdapter(model="sonnet").invocation(task).argv[5:]
        ['claude', '-p', '--output-format', 'stream-json', '--verbose', '--dangerously-skip-permissions', '--model', 'sonnet']
    """

    name: ClassVar[str] = "claude-code"
    cli_version: ClassVar[str | None] = "2.1.332"
    required_secrets: ClassVar[tuple[str, ...]] = ("ANTHROPIC_API_KEY",)

    def __init__(self, *, model: str | None = None, max_turns: int | None = None, executable: str = "claude") -> None:
        self.model = model
        self.max_turns = max_turns
        self.executable = executable

    def invocation(self, task: AgentTask) -> AgentInvocation:
        argv = [self.executable, "-p", "--output-format", "stream-json", "--verbose", "--dangerously-skip-permissions"]
        if self.model:
            argv += ["--model", self.model]
        if self.max_turns:
            argv += ["--max-turns", str(self.max_turns)]
        return AgentInvocation(
            argv=stdin_from_file(PROMPT_PATH, argv),
            cwd=task.repo_dir,
            env=dict(QUIET_CLAUDE_ENV),
            secret_env=self._secret_env(task),
            files=self._prompt_file(task),
        )

    def parse_line(self, line: str) -> list[AgentEvent]:
        data = parse_json_line(line)
        if data is None:
            return []
        kind = data.get("type")
        if kind == "system" and data.get("subtype") == "init":
            text = f"session {data.get('session_id', '?')} model {data.get('model', '?')}"
            return [AgentEvent("init", text, data=data)]
        if kind in ("assistant", "user"):
            return list(self._content_events(kind, data))
        if kind == "result":
            is_error = bool(data.get("is_error")) or str(data.get("subtype", "success")) != "success"
            text = data.get("result")
            if not isinstance(text, str) or not text:
                text = f"claude ended with {data.get('subtype', 'an error')}" if is_error else ""
            usage = claude_usage(data.get("usage"), data.get("total_cost_usd"))
            return [AgentEvent("result", text, usage=usage, is_error=is_error, data=data)]
        return []

    @staticmethod
    def _content_events(kind: str, data: Mapping[str, Any]) -> list[AgentEvent]:
        message = data.get("message") or {}
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            return [AgentEvent("message", content, data=data)] if kind == "assistant" and content else []
        events: list[AgentEvent] = []
        for block in content or []:
            if not isinstance(block, dict):
                continue
            block_type = block.get("type")
            if block_type == "text" and kind == "assistant" and block.get("text"):
                events.append(AgentEvent("message", str(block["text"]), data=data))
            elif block_type == "thinking" and block.get("thinking"):
                events.append(AgentEvent("thinking", str(block["thinking"]), data=data))
            elif block_type == "tool_use":
                events.append(AgentEvent("tool", str(block.get("name", "tool")), data=data))
            elif block_type == "tool_result":
                text = block.get("content")
                if isinstance(text, list):
                    text = "\n".join(str(part.get("text", "")) for part in text if isinstance(part, dict))
                events.append(AgentEvent("tool_result", str(text or ""), is_error=bool(block.get("is_error")), data=data))
        return events
