"""Sandbox settings as blocks: one block type per provider, same fields as the
provider's settings model, so a saved block is the settings."""

from __future__ import annotations

from prefect.blocks.core import Block

from cloud_runs.sandboxes import DockerSandboxSettings, LocalSandboxSettings, ModalSandboxSettings


class LocalSandboxBlock(Block, LocalSandboxSettings):
    """A process in a temporary directory. Isolates nothing: demo and tests only."""

    _block_type_name = "Cloud Runs Local Sandbox"
    _block_type_slug = "cloud-runs-local-sandbox"
    _description = "Runs the agent as a local process. Development only; refused in production."


class DockerSandboxBlock(Block, DockerSandboxSettings):
    """A hardened Docker container per run. Development and self-hosted setups."""

    _block_type_name = "Cloud Runs Docker Sandbox"
    _block_type_slug = "cloud-runs-docker-sandbox"
    _description = "Runs the agent in a hardened Docker container. Refused in production."


class ModalSandboxBlock(Block, ModalSandboxSettings):
    """A Modal sandbox (gVisor) per run: the production provider."""

    _block_type_name = "Cloud Runs Modal Sandbox"
    _block_type_slug = "cloud-runs-modal-sandbox"
    _description = "Runs the agent in a Modal sandbox with gVisor isolation."


SANDBOX_BLOCKS: dict[str, type[Block]] = {"local": LocalSandboxBlock, "docker": DockerSandboxBlock, "modal": ModalSandboxBlock}
