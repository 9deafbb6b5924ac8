"""Prefect blocks of Cloud Runs.

Registered through the package's ``prefect.collections`` entry point, so
``Block.load`` works in any process (workers, containers) that has the package
installed, without importing these classes first.
"""

from __future__ import annotations

from blocks.agent_credentials import AgentCredentials
from blocks.github_app import GitHubApp
from blocks.loading import RunBlocks, load_run_blocks
from blocks.modal_credentials import ModalCredentials
from blocks.sandboxes import SANDBOX_BLOCKS, DockerSandboxBlock, LocalSandboxBlock, ModalSandboxBlock

__all__ = [
    "AgentCredentials",
    "DockerSandboxBlock",
    "GitHubApp",
    "LocalSandboxBlock",
    "ModalCredentials",
    "ModalSandboxBlock",
    "RunBlocks",
    "SANDBOX_BLOCKS",
    "load_run_blocks",
]
