"""Agent choices as pydantic models with a ``type`` discriminator.

A flow takes ``agent: AgentSettings`` and Prefect renders a form with one
variant per agent; each variant builds its adapter with :meth:`adapter`.

Example:
    >>> agent_settings_from_name("claude-code")
    ClaudeCodeAgent(type='claude-code', model=None, max_turns=None)
    >>> ClaudeCodeAgent(model="sonnet").adapter().required_secrets
    ('ANTHROPIC_API_KEY',)
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from cloud_runs.agents.base import ENV_NAME, AgentAdapter
from cloud_runs.agents.claude_code import ClaudeCodeAdapter
from cloud_runs.agents.codex import CodexAdapter
from cloud_runs.agents.command import CommandAdapter
from cloud_runs.agents.posthog import PosthogAdapter
from cloud_runs.agents.scripted import ScriptedAdapter, ScriptedStep
from cloud_runs.errors import InputError



class _AgentSettingsBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScriptedAgent(_AgentSettingsBase):
    """A deterministic recipe of file changes, commands and commits (demo and tests)."""

    type: Literal["scripted"] = "scripted"
    steps: list[ScriptedStep] = Field(
        default_factory=list, description="Steps run in order: write, edit, delete, rename, chmod, run, commit, fail, hang, say."
    )

    def adapter(self) -> AgentAdapter:
        return ScriptedAdapter(self.steps)


class ClaudeCodeAgent(_AgentSettingsBase):
    """Anthropic's Claude Code CLI in headless mode (needs ANTHROPIC_API_KEY)."""

    type: Literal["claude-code"] = "claude-code"
    model: str | None = Field(default=None, description="Model name or alias; the CLI's default when empty.")
    max_turns: int | None = Field(default=None, gt=0, description="Stop after this many agent turns.")

    def adapter(self) -> AgentAdapter:
        return ClaudeCodeAdapter(model=self.model or None, max_turns=self.max_turns)


class CodexAgent(_AgentSettingsBase):
    """OpenAI's Codex CLI through ``codex exec`` (needs OPENAI_API_KEY)."""

    type: Literal["codex"] = "codex"
    model: str | None = Field(default=None, description="Model name; the CLI's default when empty.")

    def adapter(self) -> AgentAdapter:
        return CodexAdapter(model=self.model or None)


class PosthogAgent(_AgentSettingsBase):
    """PostHog's ``@posthog/agent`` (Claude adapter) in local mode (needs ANTHROPIC_API_KEY)."""

    type: Literal["posthog"] = "posthog"
    model: str | None = Field(default=None, description="Claude model id; the package's default when empty.")

    def adapter(self) -> AgentAdapter:
        return PosthogAdapter(model=self.model or None)


class CommandAgent(_AgentSettingsBase):
    """Any command; ``{prompt_file}`` and ``{repo_dir}`` are substituted inside its arguments."""

    type: Literal["command"] = "command"
    command: list[str] = Field(min_length=1, description='e.g. ["my-agent", "--prompt-file", "{prompt_file}"]')
    secrets: list[Annotated[str, Field(pattern=ENV_NAME.pattern)]] = Field(
        default_factory=list, description="Names of secret environment variables the command needs (e.g. a model key)."
    )

    @field_validator("command")
    @classmethod
    def _program_given(cls, value: list[str]) -> list[str]:
        if not value[0].strip():
            raise ValueError("the first item must name the program to run")
        return value

    def adapter(self) -> AgentAdapter:
        return CommandAdapter(self.command, secrets=self.secrets)


AgentSettings = Annotated[
    ScriptedAgent | ClaudeCodeAgent | CodexAgent | PosthogAgent | CommandAgent,
    Field(discriminator="type"),
]
AGENT_SETTINGS: TypeAdapter[AgentSettings] = TypeAdapter(AgentSettings)
AGENT_NAMES = ("claude-code", "codex", "posthog", "scripted", "command")


def agent_settings_from_name(name: str, *, command: list[str] | None = None) -> AgentSettings:
    """Settings for an agent named on the command line or in ``CLOUD_RUNS_AGENT``.

    Args:
        name: One of :data:`AGENT_NAMES`.
        command: The command template, required for ``command``.

    Raises:
        InputError: Unknown name, or ``command`` without a command.
    """
    key = (name or "").strip().lower()
    if key == "command":
        if not command:
            raise InputError(
                "the command agent needs a command", hint='pass the command, e.g. ["my-agent", "{prompt_file}"]'
            )
        return CommandAgent(command=list(command))
    if key not in AGENT_NAMES:
        raise InputError(f"unknown agent {name!r}", hint=f"choose one of {', '.join(AGENT_NAMES)}")
    return AGENT_SETTINGS.validate_python({"type": key})
