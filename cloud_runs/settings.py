"""Configuration, read through python-decouple from the environment or `.env`.

Every variable is documented with its default in `.env.example`. The
environment wins over `.env`; `.env` is looked up from the working directory
upwards (python-decouple's ``AutoConfig``).

Example:
    >>> from cloud_runs.settings import load_settings
    >>> settings = load_settings()
    >>> settings.github_api_url
    'https://api.github.com'
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from decouple import AutoConfig, Config, RepositoryEnv, UndefinedValueError

from cloud_runs.errors import ConfigurationError

PUBLIC_GITHUB_API_URL = "https://api.github.com"
SANDBOX_PROVIDERS = ("local", "docker", "modal")
ENVIRONMENTS = ("development", "test", "staging", "production")


@dataclass(frozen=True)
class Settings:
    """All of Cloud Runs' configuration in one immutable object.

    Secret fields are excluded from ``repr`` so that logging a ``Settings``
    never prints them.
    """

    github_app_client_id: str = ""
    github_app_id: str = ""
    github_app_slug: str = ""
    github_app_private_key: str = field(default="", repr=False)
    github_api_url: str = PUBLIC_GITHUB_API_URL
    environment: str = "development"
    sandbox_provider: str = "docker"
    sandbox_image: str = "cloud-runs-sandbox:latest"
    modal_token_id: str = field(default="", repr=False)
    modal_token_secret: str = field(default="", repr=False)
    modal_app_name: str = "cloud-runs"
    local_agent_package: str = ""
    extra_ca_certs: str = ""
    agent: str = "claude-code"
    anthropic_api_key: str = field(default="", repr=False)
    anthropic_base_url: str = ""
    openai_api_key: str = field(default="", repr=False)
    openai_base_url: str = ""

    @property
    def is_production(self) -> bool:
        """True when ``CLOUD_RUNS_ENVIRONMENT`` says production."""
        return self.environment == "production"

    @property
    def github_web_url(self) -> str:
        """The web host that matches the API URL (github.com, an Enterprise host, the forge)."""
        url = self.github_api_url.rstrip("/")
        if url == PUBLIC_GITHUB_API_URL:
            return "https://github.com"
        return url.removesuffix("/api/v3")


def normalize_private_key(value: str) -> str:
    """Turns the literal ``\\n`` sequences of a one-line `.env` value into newlines."""
    return value.replace("\\r\\n", "\n").replace("\\n", "\n").strip()


def load_settings(env_file: str | Path | None = None) -> Settings:
    """Reads the settings from the environment and `.env` (or ``env_file``).

    Args:
        env_file: A specific `.env` file to read instead of the one found from
            the working directory. Environment variables still take precedence.

    Raises:
        ConfigurationError: A variable has a value outside its allowed set.
    """
    if env_file is not None:
        path = Path(env_file)
        if not path.is_file():
            raise ConfigurationError(f"env file {path} does not exist", hint="pass an existing .env file")
        config = Config(RepositoryEnv(str(path)))
    else:
        config = AutoConfig(search_path=os.getcwd())

    def get(name: str, default: str = "") -> str:
        try:
            return str(config(name, default=default)).strip()
        except UndefinedValueError:  # pragma: no cover - default always given
            return default

    environment = get("CLOUD_RUNS_ENVIRONMENT", "development").lower()
    if environment not in ENVIRONMENTS:
        raise ConfigurationError(
            f"CLOUD_RUNS_ENVIRONMENT={environment!r} is not one of {', '.join(ENVIRONMENTS)}",
            hint="set CLOUD_RUNS_ENVIRONMENT to development or production",
        )
    provider = get("SANDBOX_PROVIDER", "docker").lower()
    if provider not in SANDBOX_PROVIDERS:
        raise ConfigurationError(
            f"SANDBOX_PROVIDER={provider!r} is not one of {', '.join(SANDBOX_PROVIDERS)}",
            hint="set SANDBOX_PROVIDER to local, docker or modal",
        )
    return Settings(
        github_app_client_id=get("GITHUB_APP_CLIENT_ID"),
        github_app_id=get("GITHUB_APP_ID"),
        github_app_slug=get("GITHUB_APP_SLUG"),
        github_app_private_key=normalize_private_key(get("GITHUB_APP_PRIVATE_KEY")),
        github_api_url=get("GITHUB_API_URL", PUBLIC_GITHUB_API_URL).rstrip("/"),
        environment=environment,
        sandbox_provider=provider,
        sandbox_image=get("SANDBOX_IMAGE", "cloud-runs-sandbox:latest"),
        modal_token_id=get("MODAL_TOKEN_ID"),
        modal_token_secret=get("MODAL_TOKEN_SECRET"),
        modal_app_name=get("MODAL_APP_NAME", "cloud-runs"),
        local_agent_package=get("LOCAL_AGENT_PACKAGE"),
        extra_ca_certs=get("EXTRA_CA_CERTS"),
        agent=get("CLOUD_RUNS_AGENT", "claude-code"),
        anthropic_api_key=get("ANTHROPIC_API_KEY"),
        anthropic_base_url=get("ANTHROPIC_BASE_URL"),
        openai_api_key=get("OPENAI_API_KEY"),
        openai_base_url=get("OPENAI_BASE_URL"),
    )
