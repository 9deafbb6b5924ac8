"""The agent interface: how a coding agent is started in a sandbox and how its output is read.

An :class:`AgentAdapter` turns an :class:`AgentTask` (prompt, repository path in
the sandbox, model credentials, options) into an :class:`AgentInvocation` (argv,
environment, files to place first), and turns the lines the agent prints into
:class:`AgentEvent` objects. :func:`run_agent` does the rest the same way for
every agent: writes the files, starts the process with the model key in its
environment only, streams every line through the :class:`~cloud_runs.redact.Redactor`,
enforces the wall-clock timeout, and returns an :class:`AgentResult`.

Rules every adapter follows:

* The prompt travels in a file outside the repository (:data:`PROMPT_PATH`),
  never through a shell string. CLIs that read the prompt from stdin get it
  through :func:`stdin_from_file`, which redirects the file with a constant
  ``sh`` script: neither the prompt nor any option value is ever parsed by a shell.
* Model keys go only into the agent process's environment (``secret_env``),
  never into files, argv or setup commands.
* The agent never receives a GitHub credential: tasks that carry one are refused.

Example:
    >>> from cloud_runs.agents import ScriptedAgent, AgentTask, run_agent
    >>> from cloud_runs.redact import Redactor
    >>> adapter = ScriptedAgent(steps=[{"action": "say", "text": "hello"}]).adapter()
    >>> result = run_agent(sandbox, adapter, AgentTask(prompt="greet"), redactor=Redactor())  # doctest: +SKIP
    >>> result.status, result.summary  # doctest: +SKIP
    ('succeeded', 'hello')
"""

from __future__ import annotations

import abc
import collections
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from cloud_runs.errors import InputError
from cloud_runs.redact import Redactor
from cloud_runs.sandboxes.base import Sandbox

#: Directory, outside the repository, for everything Cloud Runs places for the agent.
AGENT_DIR = "/tmp/cloud-runs/agent"
#: Where the prompt is written, byte for byte, before the agent starts.
PROMPT_PATH = f"{AGENT_DIR}/prompt.md"
DEFAULT_REPO_DIR = "/workspace/repo"
DEFAULT_TIMEOUT_SECONDS = 1800.0
#: How many (redacted) output lines a result keeps.
OUTPUT_TAIL_LINES = 50

# Environment variables through which tools pick up GitHub credentials. The
# agent must never be able to push or open pull requests itself.
GITHUB_CREDENTIAL_VARIABLES = frozenset(
    {"GH_TOKEN", "GITHUB_TOKEN", "GH_ENTERPRISE_TOKEN", "GITHUB_ENTERPRISE_TOKEN", "GITHUB_PAT"}
)
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# A constant script: `sh -c SCRIPT NAME PROMPT_FILE PROGRAM ARGS...` runs
# PROGRAM ARGS with PROMPT_FILE on stdin. Every value arrives as a positional
# parameter, so nothing a user or model controls is ever parsed by the shell.
_STDIN_FROM_FILE_SCRIPT = 'prompt_file=$1; shift; exec "$@" < "$prompt_file"'

AgentStatus = Literal["succeeded", "failed", "timed_out"]
LineCallback = Callable[[str, str], None]


def stdin_from_file(path: str, argv: Sequence[str]) -> list[str]:
    """Returns an argv that runs ``argv`` with the file at ``path`` as its stdin.

    Example:
        >>> stdin_from_file("/tmp/p.md", ["claude", "-p"])
        ['sh', '-c', 'prompt_file=$1; shift; exec "$@" < "$prompt_file"', 'cloud-runs-agent', '/tmp/p.md', 'claude', '-p']
    """
    return ["sh", "-c", _STDIN_FROM_FILE_SCRIPT, "cloud-runs-agent", path, *argv]


@dataclass(frozen=True)
class AgentTask:
    """What the agent is asked to do, and with which credentials.

    Attributes:
        prompt: The task, passed to the agent byte for byte.
        repo_dir: The repository's absolute path inside the sandbox (the agent's cwd).
        secrets: Environment variable name -> secret value (model keys only),
            e.g. ``{"ANTHROPIC_API_KEY": "sk-ant-..."}``. Never shown in ``repr``.
        env: Non-secret environment, e.g. ``{"ANTHROPIC_BASE_URL": "http://..."}``.
        timeout_seconds: Wall-clock limit; the agent is killed after it.

    Raises:
        InputError: An empty prompt, a relative ``repo_dir``, a malformed
            variable name, or a GitHub credential among ``secrets``/``env``.
    """

    prompt: str
    repo_dir: str = DEFAULT_REPO_DIR
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    env: Mapping[str, str] = field(default_factory=dict)
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise InputError("the agent's prompt is empty", hint="pass a prompt that describes the change to make")
        if "\x00" in self.prompt:
            raise InputError("the agent's prompt contains a NUL character", hint="remove NUL bytes from the prompt")
        if not self.repo_dir.startswith("/"):
            raise InputError(
                f"repo_dir {self.repo_dir!r} is not an absolute path",
                hint="pass the repository's absolute path inside the sandbox, e.g. /workspace/repo",
            )
        if not self.timeout_seconds or self.timeout_seconds <= 0:
            raise InputError(
                f"timeout_seconds={self.timeout_seconds!r} is not positive",
                hint="give the agent a positive wall-clock limit in seconds",
            )
        for kind, mapping in (("secret", self.secrets), ("env", self.env)):
            for name, value in mapping.items():
                if not ENV_NAME.match(name):
                    raise InputError(
                        f"{kind} variable name {name!r} is not a valid environment variable name",
                        hint="use letters, digits and underscores, not starting with a digit",
                    )
                if name.upper() in GITHUB_CREDENTIAL_VARIABLES:
                    raise InputError(
                        f"{kind} variable {name} would hand the agent a GitHub credential",
                        hint="the agent never gets GitHub credentials; the flow pushes its work itself",
                    )
                if not isinstance(value, str):
                    raise InputError(f"{kind} variable {name} is not a string", hint="pass string values")
        for name, value in self.env.items():
            if Redactor().redact(value) != value:
                raise InputError(
                    f"env variable {name} holds a value shaped like a GitHub token or private key",
                    hint="pass model keys through secrets; GitHub credentials never reach the agent",
                )


@dataclass(frozen=True)
class AgentInvocation:
    """How to start one agent process in the sandbox.

    Attributes:
        argv: Program and arguments (never run through a shell with values in it).
        env: Non-secret environment of the agent process.
        secret_env: Secret environment of the agent process (model keys); not in ``repr``.
        files: Absolute path (outside the repository) -> bytes, written before the start.
        cwd: Working directory of the process.
    """

    argv: list[str]
    cwd: str
    env: dict[str, str] = field(default_factory=dict)
    secret_env: dict[str, str] = field(default_factory=dict, repr=False)
    files: dict[str, bytes] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class AgentUsage:
    """Tokens and cost an agent reported (``None`` when it reported nothing)."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None

    def __add__(self, other: AgentUsage) -> AgentUsage:
        def add(a: Any, b: Any) -> Any:
            return b if a is None else a if b is None else a + b

        return AgentUsage(
            add(self.input_tokens, other.input_tokens),
            add(self.output_tokens, other.output_tokens),
            add(self.cost_usd, other.cost_usd),
        )


#: Event kinds every parser maps its CLI's output to.
EventKind = Literal["init", "message", "thinking", "tool", "tool_result", "usage", "result", "error"]


@dataclass(frozen=True)
class AgentEvent:
    """One structured thing the agent reported.

    Attributes:
        kind: ``init`` (session started), ``message`` (text for the user),
            ``thinking``, ``tool`` (a tool call or command), ``tool_result``,
            ``usage`` (tokens of one turn; summed), ``result`` (the final
            report; its usage is the run's total), ``error``.
        text: Human-readable content (already redacted).
        usage: Token counts and cost carried by ``usage``/``result`` events.
        is_error: True when a ``result`` reports failure.
        data: The parsed JSON object the event came from.
    """

    kind: EventKind
    text: str = ""
    usage: AgentUsage | None = None
    is_error: bool = False
    data: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class AgentOutcome:
    """What the events say about the run: its summary, usage and any reported error."""

    summary: str = ""
    usage: AgentUsage = field(default_factory=AgentUsage)
    error: str | None = None


@dataclass(frozen=True)
class AgentResult:
    """How an agent run ended. Every text field is redacted.

    Attributes:
        status: ``succeeded``, ``failed`` (non-zero exit or a reported error)
            or ``timed_out`` (killed at the wall-clock limit).
        exit_code: The process's exit status (``-1`` when killed by the timeout).
        summary: The agent's final message (or the error that ended it).
        input_tokens / output_tokens / cost_usd: As the agent reported them, or None.
        output_tail: The last :data:`OUTPUT_TAIL_LINES` lines of output (stdout and stderr).
        duration_seconds: Wall-clock time of the agent process.
        event_count: Structured events parsed from its output.
    """

    agent: str
    status: AgentStatus
    exit_code: int
    summary: str
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    output_tail: str
    duration_seconds: float
    event_count: int

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


class AgentAdapter(abc.ABC):
    """Knows how to start one kind of agent and how to read what it prints.

    Subclasses set :attr:`name`, :attr:`cli_version` (the CLI version the
    invocation and parser were written against) and :attr:`required_secrets`.
    """

    name: ClassVar[str]
    cli_version: ClassVar[str | None] = None
    required_secrets: ClassVar[tuple[str, ...]] = ()

    @abc.abstractmethod
    def invocation(self, task: AgentTask) -> AgentInvocation:
        """The command, environment and files that start the agent on ``task``."""

    def parse_line(self, line: str) -> list[AgentEvent]:
        """Structured events from one stdout line (none for lines it does not understand)."""
        return []

    def summarize(self, events: Sequence[AgentEvent]) -> AgentOutcome:
        """Summary text, usage and reported error from the run's events.

        The summary is the last ``result`` text, else the last ``message``.
        Usage is the last ``result`` usage when it has any (CLIs report totals
        there), else the sum of ``usage`` events (per-turn counts).
        """
        summary = ""
        last_message = ""
        result_usage: AgentUsage | None = None
        turn_usage = AgentUsage()
        error: str | None = None
        for event in events:
            if event.kind == "message" and event.text:
                last_message = event.text
            elif event.kind == "usage" and event.usage:
                turn_usage = turn_usage + event.usage
            elif event.kind == "result":
                if event.text:
                    summary = event.text
                if event.usage and event.usage != AgentUsage():
                    result_usage = event.usage
                if event.is_error:
                    error = event.text or "the agent reported an error"
            elif event.kind == "error":
                error = event.text or "the agent reported an error"
        return AgentOutcome(summary=summary or last_message, usage=result_usage or turn_usage, error=error)

    # Helpers for subclasses.

    def _secret_env(self, task: AgentTask) -> dict[str, str]:
        """The required secrets, taken from the task (checked by :func:`check_secrets`)."""
        return {name: task.secrets[name] for name in self.required_secrets}

    @staticmethod
    def _prompt_file(task: AgentTask) -> dict[str, bytes]:
        return {PROMPT_PATH: task.prompt.encode("utf-8")}


def check_secrets(adapter: AgentAdapter, task: AgentTask) -> None:
    """Raises :class:`InputError` naming each required secret the task lacks."""
    missing = [name for name in adapter.required_secrets if not task.secrets.get(name)]
    if missing:
        raise InputError(
            f"the {adapter.name} agent needs {', '.join(missing)}, which the run does not have",
            hint=f"set {' and '.join(missing)} (in .env or the agent credentials block)",
        )


def parse_json_line(line: str) -> dict[str, Any] | None:
    """The JSON object on ``line``, or None for blank lines, plain text and non-objects."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def json_int(value: Any) -> int | None:
    """A JSON number as int (None for anything else, booleans included)."""
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def json_number(value: Any) -> float | None:
    """A JSON number as float (None for anything else, booleans included)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def run_agent(
    sandbox: Sandbox,
    adapter: AgentAdapter,
    task: AgentTask,
    *,
    redactor: Redactor,
    on_line: LineCallback | None = None,
    on_event: Callable[[AgentEvent], None] | None = None,
) -> AgentResult:
    """Runs the agent on ``task`` inside ``sandbox`` and reports how it ended.

    Every output line is redacted before it reaches ``on_line``, the parser,
    the result or anything else. The model key is registered with ``redactor``
    here too, so callers cannot forget it.

    Args:
        sandbox: Where the agent runs; the repository is already at ``task.repo_dir``.
        adapter: The agent to run.
        task: Prompt, credentials and limits.
        redactor: Knows every secret value of the run (extended with the task's secrets).
        on_line: Receives ``(stream, redacted_line)`` as the agent produces them.
        on_event: Receives each structured event as it is parsed.

    Raises:
        InputError: A required secret is missing (before anything is written or started).
    """
    check_secrets(adapter, task)
    invocation = adapter.invocation(task)
    for value in (*task.secrets.values(), *invocation.secret_env.values()):
        redactor.add(value)
    for path, data in invocation.files.items():
        sandbox.write_file(path, data, mode=0o600 if path == PROMPT_PATH else 0o644)

    tail: collections.deque[str] = collections.deque(maxlen=OUTPUT_TAIL_LINES)
    events: list[AgentEvent] = []
    lock = threading.Lock()  # providers may call back from one thread per stream

    def handle(stream: str, line: str) -> None:
        clean = redactor.redact(line)
        parsed: Iterable[AgentEvent] = adapter.parse_line(clean) if stream == "stdout" else ()
        with lock:
            tail.append(clean)
            events.extend(parsed)
        if on_line is not None:
            on_line(stream, clean)
        if on_event is not None:
            for event in parsed:
                on_event(event)

    started = time.monotonic()
    exec_result = sandbox.exec(
        invocation.argv,
        cwd=invocation.cwd,
        env={**task.env, **invocation.env, **invocation.secret_env},
        timeout=task.timeout_seconds,
        on_output=handle,
    )
    duration = exec_result.duration_seconds or (time.monotonic() - started)

    outcome = adapter.summarize(events)
    summary = outcome.summary
    if exec_result.timed_out:
        status: AgentStatus = "timed_out"
        summary = summary or f"the agent did not finish within {task.timeout_seconds:g} seconds"
    elif exec_result.exit_code != 0:
        status = "failed"
        summary = outcome.error or summary or f"the agent exited with status {exec_result.exit_code}"
    elif outcome.error:
        status = "failed"
        summary = outcome.error
    else:
        status = "succeeded"
    return AgentResult(
        agent=adapter.name,
        status=status,
        exit_code=exec_result.exit_code,
        summary=redactor.redact(summary),
        input_tokens=outcome.usage.input_tokens,
        output_tokens=outcome.usage.output_tokens,
        cost_usd=outcome.usage.cost_usd,
        output_tail="\n".join(tail),
        duration_seconds=round(duration, 3),
        event_count=len(events),
    )
