"""PostHog's agent (``@posthog/agent``) in local mode, through ``posthog-runner.mjs``.

Written against ``@posthog/agent`` 2.4.187. The package is built on the Agent
Client Protocol; ``sandbox_images/base/posthog-runner.mjs`` (installed in the
image at :data:`RUNNER_PATH`, next to ``node_modules/@posthog/agent``) is a
small ACP client: it starts the package's in-process Claude adapter without a
PostHog backend, opens a session in the repository, sends the prompt read from
a file, approves permission requests (the sandbox is the boundary), and prints
JSON lines (documented at the top of the runner). Its ``agent-server`` binary
(cloud mode) needs PostHog's backend and is not used.

Authentication: ``ANTHROPIC_API_KEY`` (agent process only); optional
``ANTHROPIC_BASE_URL`` in the task's env. The runner checks that the endpoint
answers before starting, so an unreachable model fails in seconds with a
message naming the URL, instead of after minutes of SDK retries. Claude Code
refuses to skip permission prompts as root, so the sandbox must run the agent
as an unprivileged user (the image's ``agent`` user).
"""

from __future__ import annotations

from typing import ClassVar

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
)
from cloud_runs.agents.claude_code import QUIET_CLAUDE_ENV

#: Where the base image installs the runner (next to its node_modules).
RUNNER_PATH = "/opt/cloud-runs/posthog-runner.mjs"


class PosthogAdapter(AgentAdapter):
    """Runs ``node /opt/cloud-runs/posthog-runner.mjs --prompt-file ... --cwd ...``.

    Example:
        >>> from cloud_runs.agents.base import AgentTask
        >>> task = AgentTask(prompt="fix it", secrets={"ANTHROPIC_API_KEY": "sk-ant-x"})
        >>> PosthogAdapter().invocation(task).argv
        ['node', '/opt/cloud-runs/posthog-runner.mjs', '--prompt-file', '/tmp/cloud-runs/agent/prompt.md', '--cwd', '/workspace/repo']
    """

    name: ClassVar[str] = "posthog"
    cli_version: ClassVar[str | None] = "2.4.187"
    required_secrets: ClassVar[tuple[str, ...]] = ("ANTHROPIC_API_KEY",)

    def __init__(self, *, model: str | None = None, runner_path: str = RUNNER_PATH, node: str = "node") -> None:
        self.model = model
        self.runner_path = runner_path
        self.node = node

    def invocation(self, task: AgentTask) -> AgentInvocation:
        argv = [self.node, self.runner_path, "--prompt-file", PROMPT_PATH, "--cwd", task.repo_dir]
        if self.model:
            argv += ["--model", self.model]
        return AgentInvocation(
            argv=argv,
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
        if kind == "session.started":
            return [AgentEvent("init", f"session {data.get('session_id', '?')}", data=data)]
        if kind == "message":
            return [AgentEvent("message", str(data.get("text") or ""), data=data)]
        if kind == "thought":
            return [AgentEvent("thinking", str(data.get("text") or ""), data=data)]
        if kind == "tool_call":
            return [AgentEvent("tool", str(data.get("title") or data.get("kind") or "tool"), data=data)]
        if kind == "tool_call_update" and data.get("status") in ("completed", "failed"):
            return [AgentEvent("tool_result", str(data.get("status")), is_error=data.get("status") == "failed", data=data)]
        if kind == "result":
            usage = AgentUsage(json_int(data.get("input_tokens")), json_int(data.get("output_tokens")), json_number(data.get("cost_usd")))
            is_error = bool(data.get("is_error"))
            text = str(data.get("summary") or "")
            if is_error and not text:
                text = f"the agent stopped: {data.get('stop_reason', 'unknown reason')}"
            return [AgentEvent("result", text, usage=usage, is_error=is_error, data=data)]
        if kind == "error":
            return [AgentEvent("error", str(data.get("message") or "the runner failed"), data=data)]
        return []
