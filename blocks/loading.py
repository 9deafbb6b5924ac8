"""Loading a run's blocks by name, with errors that say which block is missing
and how to create it. Runs before any side effect of the run."""

from __future__ import annotations

from dataclasses import dataclass, field

from prefect.blocks.core import Block

from blocks.agent_credentials import AgentCredentials
from blocks.github_app import GitHubApp
from blocks.sandboxes import SANDBOX_BLOCKS
from cloud_runs.agents import AgentSettings
from cloud_runs.errors import InputError
from cloud_runs.sandboxes import SandboxSettings

#: Seconds a sandbox must outlive the agent: clone before, collect after.
SANDBOX_MARGIN_SECONDS = 300


@dataclass(frozen=True)
class RunBlocks:
    app: GitHubApp
    sandbox: SandboxSettings
    secrets: dict[str, str] = field(repr=False)
    endpoints: dict[str, str]

    @property
    def private_key(self) -> str:
        return self.app.private_key.get_secret_value()


def load_block(block_class: type[Block], name: str, parameter: str) -> Block:
    """``block_class.load(name)``; a missing document is an :class:`InputError` naming ``parameter``."""
    try:
        return block_class.load(name)
    except ValueError as error:
        if "Unable to find block document" not in str(error):
            raise
        raise InputError(
            f"{parameter}: no {block_class.get_block_type_name()} block named {name!r}",
            hint="create it with `cloud-runs blocks init` (from .env) or in the Prefect UI under Blocks",
        ) from None


def parse_sandbox_reference(reference: str) -> tuple[type[Block], str]:
    """Splits ``provider/name`` (e.g. ``docker/default``) into block class and name."""
    provider, _, name = reference.partition("/")
    if provider not in SANDBOX_BLOCKS or not name:
        raise InputError(
            f"sandbox {reference!r} is not of the form provider/name with provider one of {', '.join(SANDBOX_BLOCKS)}",
            hint="pass e.g. --sandbox docker/default",
        )
    return SANDBOX_BLOCKS[provider], name


def load_run_blocks(*, github_app: str, sandbox: str, agent_credentials: str, agent: AgentSettings,
                    agent_timeout_seconds: int) -> RunBlocks:
    """Loads and cross-checks the blocks a run names.

    Raises:
        InputError: A block does not exist, the agent's model key is missing, or
            the sandbox would end before the agent's timeout.
    """
    sandbox_class, sandbox_name = parse_sandbox_reference(sandbox)
    app = load_block(GitHubApp, github_app, "github_app")
    sandbox_settings = load_block(sandbox_class, sandbox_name, "sandbox")
    adapter = agent.adapter()
    if adapter.required_secrets:
        credentials = load_block(AgentCredentials, agent_credentials, "agent_credentials")
    else:
        try:
            credentials = AgentCredentials.load(agent_credentials)
        except ValueError:
            credentials = AgentCredentials()
    secrets = credentials.secrets()
    missing = [name for name in adapter.required_secrets if name not in secrets]
    if missing:
        raise InputError(
            f"the {agent.type} agent needs {', '.join(missing)}, which the Agent Credentials block "
            f"{agent_credentials!r} does not hold",
            hint="set it in .env and run `cloud-runs blocks init`, or edit the block in the Prefect UI",
        )
    if agent_timeout_seconds + SANDBOX_MARGIN_SECONDS > sandbox_settings.lifetime_seconds:
        raise InputError(
            f"agent_timeout_seconds={agent_timeout_seconds} does not fit in the sandbox's lifetime of "
            f"{sandbox_settings.lifetime_seconds} s (it needs {SANDBOX_MARGIN_SECONDS} s more for clone and collect)",
            hint="lower agent_timeout_seconds or raise lifetime_seconds on the sandbox block",
        )
    return RunBlocks(app=app, sandbox=sandbox_settings, secrets=secrets, endpoints=credentials.endpoints())
