"""Sandbox settings as blocks: one block type per provider, same fields as the
provider's settings model, so a saved block is the settings."""

from __future__ import annotations

from collections.abc import Mapping

from prefect.blocks.core import Block
from pydantic import Field

from blocks.modal_credentials import ModalCredentials
from cloud_runs.sandboxes import (DockerSandboxSettings, LocalSandboxSettings, ModalSandboxSettings, Sandbox,
                                  SandboxRef)


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
    """A Modal sandbox (gVisor) per run: the production provider.

    The token comes from a referenced ``modal-credentials`` block, so one
    document serves this block, the Modal worker and Prefect Cloud's push pools.
    """

    _block_type_name = "Cloud Runs Modal Sandbox"
    _block_type_slug = "cloud-runs-modal-sandbox"
    _description = "Runs the agent in a Modal sandbox with gVisor isolation."

    credentials: ModalCredentials | None = Field(
        default=None, description="Modal Credentials block; MODAL_TOKEN_ID/MODAL_TOKEN_SECRET when unset."
    )

    def settings(self) -> ModalSandboxSettings:
        """The provider settings, with the token taken from the credentials block."""
        fields = {name: getattr(self, name) for name in ModalSandboxSettings.model_fields}
        if self.credentials is not None:
            fields.update(self.credentials.as_kwargs())
        return ModalSandboxSettings(**fields)

    def create(self, run_id: str, labels: Mapping[str, str] | None = None) -> Sandbox:
        return self.settings().create(run_id, labels)

    def list_sandboxes(self, labels: Mapping[str, str] | None = None) -> list[SandboxRef]:
        return self.settings().list_sandboxes(labels)

    def destroy_by_id(self, sandbox_id: str) -> None:
        self.settings().destroy_by_id(sandbox_id)


SANDBOX_BLOCKS: dict[str, type[Block]] = {"local": LocalSandboxBlock, "docker": DockerSandboxBlock, "modal": ModalSandboxBlock}
