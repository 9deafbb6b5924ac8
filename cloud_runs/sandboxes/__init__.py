"""Sandboxes: one interface (:mod:`.base`), one module per provider.

Importing this package never imports ``docker`` or ``modal``: each provider
imports its SDK inside the methods that need it.

Example:
    >>> from pydantic import TypeAdapter
    >>> from cloud_runs.sandboxes import SandboxSettings
    >>> TypeAdapter(SandboxSettings).validate_python({"type": "docker", "network_mode": "none"}).type
    'docker'
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from cloud_runs.sandboxes.base import (
    CREATED_AT_LABEL,
    EXPIRES_AT_LABEL,
    LABEL_PREFIX,
    RUN_ID_LABEL,
    ExecResult,
    OutputCallback,
    Sandbox,
    SandboxError,
    SandboxRef,
    SandboxSettingsBase,
    SandboxStatus,
)
from cloud_runs.sandboxes._common import is_expired
from cloud_runs.sandboxes.docker import DockerSandbox, DockerSandboxSettings
from cloud_runs.sandboxes.local import LocalSandbox, LocalSandboxSettings
from cloud_runs.sandboxes.modal import ModalSandbox, ModalSandboxSettings

#: Settings of any provider, told apart by ``type`` ("local", "docker", "modal").
SandboxSettings = Annotated[
    Union[LocalSandboxSettings, DockerSandboxSettings, ModalSandboxSettings], Field(discriminator="type")
]

__all__ = [
    "CREATED_AT_LABEL",
    "EXPIRES_AT_LABEL",
    "LABEL_PREFIX",
    "RUN_ID_LABEL",
    "DockerSandbox",
    "DockerSandboxSettings",
    "ExecResult",
    "LocalSandbox",
    "LocalSandboxSettings",
    "ModalSandbox",
    "ModalSandboxSettings",
    "OutputCallback",
    "Sandbox",
    "SandboxError",
    "SandboxRef",
    "SandboxSettings",
    "SandboxSettingsBase",
    "SandboxStatus",
    "is_expired",
]
