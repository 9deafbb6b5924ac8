"""`cloud-runs blocks init`: block documents from `.env` / the environment."""

from __future__ import annotations

from pydantic import SecretStr

from blocks.agent_credentials import AgentCredentials
from blocks.github_app import GitHubApp
from blocks.modal_credentials import ModalCredentials
from blocks.sandboxes import DockerSandboxBlock, LocalSandboxBlock, ModalSandboxBlock
from cloud_runs.errors import ConfigurationError
from cloud_runs.github.keys import load_private_key
from cloud_runs.settings import Settings


def init_blocks(settings: Settings, name: str = "default") -> list[str]:
    """Creates or updates the block documents; returns one line per saved block, without secrets.

    Raises:
        ConfigurationError: The GitHub App settings are incomplete or the key does not parse
            (checked before anything is saved).
    """
    missing = [variable for variable, value in (("GITHUB_APP_CLIENT_ID", settings.github_app_client_id),
                                                ("GITHUB_APP_SLUG", settings.github_app_slug),
                                                ("GITHUB_APP_PRIVATE_KEY", settings.github_app_private_key)) if not value]
    if missing:
        raise ConfigurationError(f"{', '.join(missing)} not set", hint="run `cloud-runs app create` or fill them in .env")
    load_private_key(settings.github_app_private_key)
    saved = []
    app = GitHubApp.from_settings(settings)
    app.save(name, overwrite=True)
    saved.append(f"GitHub App {name!r}: client id {app.client_id}, slug {app.slug}, API {app.api_url}, private key set")
    credentials = AgentCredentials.from_settings(settings)
    credentials.save(name, overwrite=True)
    present = sorted(credentials.secrets()) + sorted(credentials.endpoints())
    saved.append(f"Agent Credentials {name!r}: {', '.join(present) if present else 'no model keys'}")
    LocalSandboxBlock().save(name, overwrite=True)
    saved.append(f"Local Sandbox {name!r}")
    DockerSandboxBlock(image=settings.sandbox_image).save(name, overwrite=True)
    saved.append(f"Docker Sandbox {name!r}: image {settings.sandbox_image}")
    if settings.modal_token_id and settings.modal_token_secret:
        ModalCredentials(token_id=settings.modal_token_id, token_secret=SecretStr(settings.modal_token_secret)).save(
            name, overwrite=True)
        saved.append(f"Modal Credentials {name!r}: token id {settings.modal_token_id}")
        ModalSandboxBlock(app_name=settings.modal_app_name, credentials=ModalCredentials.load(name)).save(
            name, overwrite=True)
        saved.append(f"Modal Sandbox {name!r}: app {settings.modal_app_name}")
    return saved
