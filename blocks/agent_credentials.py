"""Model credentials for the coding agents."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from cloud_runs.settings import Settings


class AgentCredentials(Block):
    """Model API keys and endpoints the agents use.

    Only the variables an agent declares it needs reach the sandbox, and only in
    the agent process's environment.

    Example:
        ```python
        from blocks import AgentCredentials

        env = AgentCredentials.load("default").environment()
        ```
    """

    _block_type_name = "Agent Credentials"
    _block_type_slug = "cloud-runs-agent-credentials"
    _logo_url = "https://www.prefect.io/favicon.ico"
    _description = "Model API keys for Claude Code, Codex and @posthog/agent."

    anthropic_api_key: SecretStr | None = Field(default=None, description="ANTHROPIC_API_KEY (Claude Code, @posthog/agent).")
    anthropic_base_url: str | None = Field(default=None, description="ANTHROPIC_BASE_URL, for a compatible endpoint.")
    openai_api_key: SecretStr | None = Field(default=None, description="OPENAI_API_KEY (Codex).")
    openai_base_url: str | None = Field(default=None, description="OPENAI_BASE_URL, for a compatible endpoint.")

    @classmethod
    def from_settings(cls, settings: Settings) -> AgentCredentials:
        return cls(
            anthropic_api_key=SecretStr(settings.anthropic_api_key) if settings.anthropic_api_key else None,
            anthropic_base_url=settings.anthropic_base_url or None,
            openai_api_key=SecretStr(settings.openai_api_key) if settings.openai_api_key else None,
            openai_base_url=settings.openai_base_url or None,
        )

    def secrets(self) -> dict[str, str]:
        """Secret environment variables by name (only those that are set)."""
        values = {"ANTHROPIC_API_KEY": self.anthropic_api_key, "OPENAI_API_KEY": self.openai_api_key}
        return {name: value.get_secret_value() for name, value in values.items() if value is not None}

    def endpoints(self) -> dict[str, str]:
        """Non-secret environment variables by name (only those that are set)."""
        values = {"ANTHROPIC_BASE_URL": self.anthropic_base_url, "OPENAI_BASE_URL": self.openai_base_url}
        return {name: value for name, value in values.items() if value}
