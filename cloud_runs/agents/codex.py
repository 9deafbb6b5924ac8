"""OpenAI Codex CLI (``@openai/codex``) through ``codex exec``.

Written against codex-cli 0.171.0 (``codex exec --help`` of that version):

* ``codex exec [OPTIONS] -`` reads the prompt from stdin; we feed it the
  prompt file through :func:`~cloud_runs.agents.base.stdin_from_file`.
* ``--json`` prints JSONL events: ``thread.started`` (``thread_id``),
  ``turn.started``, ``item.started``/``item.updated``/``item.completed`` (an
  ``item`` whose ``type`` is ``agent_message`` or ``reasoning`` with ``text``,
  ``command_execution`` with ``command``/``exit_code``/``aggregated_output``,
  ``file_change`` with ``changes``, ``error``...), ``turn.completed`` with
  ``usage`` (``input_tokens``, ``cached_input_tokens``, ``output_tokens``),
  ``turn.failed`` with ``error.message``, and ``error`` with ``message``.
  Codex reports no cost.
* ``--dangerously-bypass-approvals-and-sandbox`` (chosen deliberately): this
  version has no ``--full-auto`` in ``exec``; its ``workspace-write`` sandbox
  needs Landlock/bubblewrap, which containers and gVisor do not reliably
  offer, and keeps ``.git`` read-only so the agent could not commit. Our
  sandbox is the isolation boundary, which is what the flag is documented for.
* ``-C`` sets the working root, ``--skip-git-repo-check`` avoids a refusal
  when the checkout is not where Codex expects a repository, ``--ephemeral``
  keeps session files off disk, ``--color never`` keeps the output plain.
* Authentication: ``codex exec`` reads ``CODEX_API_KEY``; the OpenAI provider
  reads ``OPENAI_API_KEY``. Both get the run's OpenAI key (agent process only).
* Endpoint: this version ignores the ``OPENAI_BASE_URL`` environment variable
  (checked: it still called api.openai.com); the ``openai_base_url`` config
  key works, so a task's ``OPENAI_BASE_URL`` becomes ``-c openai_base_url="..."``.
  Codex first tries a WebSocket to ``<base>/responses`` and falls back to
  HTTPS streaming, reporting each retry as an ``error`` event (not fatal).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from cloud_runs.agents.base import (
    PROMPT_PATH,
    AgentAdapter,
    AgentEvent,
    AgentInvocation,
    AgentOutcome,
    AgentTask,
    AgentUsage,
    json_int,
    parse_json_line,
    stdin_from_file,
)



class CodexAdapter(AgentAdapter):
    """Runs ``codex exec --json ... -`` in the repository.

    Example:
        >>> from cloud_runs.agents.base import AgentTask
        >>> task = AgentTask(prompt="fix it", secrets={"OPENAI_API_KEY": "sk-x"})
        >>> CodexAdapter(model="gpt-5").invocation(task).argv[5:7]
        ['codex', 'exec']
    """

    name: ClassVar[str] = "codex"
    cli_version: ClassVar[str | None] = "0.171.0"
    required_secrets: ClassVar[tuple[str, ...]] = ("OPENAI_API_KEY",)

    def __init__(self, *, model: str | None = None, executable: str = "codex") -> None:
        self.model = model
        self.executable = executable

    def invocation(self, task: AgentTask) -> AgentInvocation:
        argv = [
            self.executable,
            "exec",
            "--json",
            "--color",
            "never",
            "--dangerously-bypass-approvals-and-sandbox",
            "--skip-git-repo-check",
            "--ephemeral",
            "-C",
            task.repo_dir,
        ]
        base_url = task.env.get("OPENAI_BASE_URL")
        if base_url:
            # A TOML string (JSON's escaping is valid TOML for a basic string).
            argv += ["-c", f"openai_base_url={json.dumps(base_url)}"]
        if self.model:
            argv += ["--model", self.model]
        argv.append("-")  # the prompt comes from stdin
        key = task.secrets["OPENAI_API_KEY"]
        return AgentInvocation(
            argv=stdin_from_file(PROMPT_PATH, argv),
            cwd=task.repo_dir,
            secret_env={"OPENAI_API_KEY": key, "CODEX_API_KEY": key},
            files=self._prompt_file(task),
        )

    def parse_line(self, line: str) -> list[AgentEvent]:
        data = parse_json_line(line)
        if data is None:
            return []
        kind = data.get("type")
        if kind == "thread.started":
            return [AgentEvent("init", f"thread {data.get('thread_id', '?')}", data=data)]
        if kind == "item.completed":
            return self._item_event(data.get("item") or {}, data)
        if kind == "turn.completed":
            usage = data.get("usage") or {}
            fresh, cached = json_int(usage.get("input_tokens")), json_int(usage.get("cached_input_tokens"))
            # OpenAI counts cached tokens inside input_tokens already.
            counted = AgentUsage(input_tokens=fresh if fresh is not None else cached, output_tokens=json_int(usage.get("output_tokens")))
            return [AgentEvent("usage", usage=counted, data=data)]
        if kind == "turn.failed":
            error = data.get("error") or {}
            message = error.get("message") if isinstance(error, dict) else str(error)
            return [AgentEvent("error", str(message or "the turn failed"), data=data)]
        if kind == "error":
            return [AgentEvent("error", str(data.get("message") or "codex reported an error"), data=data)]
        return []

    def summarize(self, events: Sequence[AgentEvent]) -> AgentOutcome:
        """As the base, except an error followed by a completed turn was recovered from.

        Codex reports stream retries as ``error`` events and carries on; only an
        error that no completed turn follows ended the run.
        """
        outcome = super().summarize(events)
        last_error = max((i for i, e in enumerate(events) if e.kind == "error"), default=-1)
        last_turn = max((i for i, e in enumerate(events) if e.kind == "usage"), default=-1)
        if outcome.error and last_turn > last_error:
            return AgentOutcome(summary=outcome.summary, usage=outcome.usage, error=None)
        return outcome

    @staticmethod
    def _item_event(item: Mapping[str, Any], data: Mapping[str, Any]) -> list[AgentEvent]:
        item_type = item.get("type")
        if item_type == "agent_message":
            return [AgentEvent("message", str(item.get("text") or ""), data=data)]
        if item_type == "reasoning":
            return [AgentEvent("thinking", str(item.get("text") or ""), data=data)]
        if item_type == "command_execution":
            failed = item.get("status") == "failed" or (json_int(item.get("exit_code")) or 0) != 0
            return [AgentEvent("tool", f"$ {item.get('command', '')}", is_error=failed, data=data)]
        if item_type == "file_change":
            changes = item.get("changes") or []
            text = ", ".join(f"{c.get('kind', '?')} {c.get('path', '?')}" for c in changes if isinstance(c, dict))
            return [AgentEvent("tool", f"files: {text}", data=data)]
        if item_type in ("mcp_tool_call", "web_search", "todo_list"):
            return [AgentEvent("tool", str(item_type), data=data)]
        if item_type == "error":
            # Non-fatal notices (e.g. a retried stream); fatal ones come as turn.failed/error.
            return [AgentEvent("tool_result", str(item.get("message") or ""), is_error=True, data=data)]
        return []
