"""The sandbox interface every provider implements.

A sandbox is where untrusted code (the agent) runs. The orchestrator talks to it
only through this interface: run a command, move bytes in and out, destroy it.

Example:
    >>> from cloud_runs.sandboxes import LocalSandboxSettings
    >>> sandbox = LocalSandboxSettings().create(run_id="demo")
    >>> sandbox.exec(["echo", "hi"], on_output=lambda stream, line: print(stream, line)).exit_code
    stdout hi
    0
    >>> sandbox.destroy()
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from cloud_runs.errors import CloudRunsError

#: Label keys every sandbox carries, so a reaper can find orphans by label.
LABEL_PREFIX = "cloud-runs."
RUN_ID_LABEL = "cloud-runs.run-id"
CREATED_AT_LABEL = "cloud-runs.created-at"
EXPIRES_AT_LABEL = "cloud-runs.expires-at"

#: Called with each line of output as it is produced: (stream, line), stream is
#: "stdout" or "stderr", line without its trailing newline.
OutputCallback = Callable[[str, str], None]


class SandboxError(CloudRunsError):
    """A sandbox could not be created, used or destroyed."""


class SandboxStatus(str, enum.Enum):
    RUNNING = "running"
    STOPPED = "stopped"
    DESTROYED = "destroyed"


@dataclass(frozen=True)
class ExecResult:
    """How a command in the sandbox ended.

    Attributes:
        exit_code: The process's exit status (``-1`` when it was killed by timeout).
        timed_out: True when the timeout killed it.
        duration_seconds: Wall-clock time of the command.
    """

    exit_code: int
    timed_out: bool = False
    duration_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@dataclass(frozen=True)
class SandboxRef:
    """A sandbox found by a label query (for the reaper)."""

    provider: str
    id: str
    labels: Mapping[str, str] = field(default_factory=dict)
    status: SandboxStatus = SandboxStatus.RUNNING


class Sandbox(abc.ABC):
    """One isolated place to run commands, created by a provider's settings.

    Implementations must make :meth:`destroy` idempotent and safe to call from
    several threads and cleanup paths at once.
    """

    provider: str
    id: str
    labels: Mapping[str, str]

    @abc.abstractmethod
    def exec(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
        timeout: float | None = None,
        on_output: OutputCallback | None = None,
    ) -> ExecResult:
        """Runs ``argv`` (never through a shell) and streams its output line by line.

        Args:
            argv: The program and its arguments.
            cwd: Working directory inside the sandbox.
            env: Extra environment for this process only.
            user: User to run as (provider default when None).
            timeout: Seconds before the process is killed; ``None`` uses the
                settings' exec timeout.
            on_output: Receives ``(stream, line)`` for every line as it appears.
        """

    @abc.abstractmethod
    def write_file(self, path: str, data: bytes, *, mode: int = 0o644) -> None:
        """Writes ``data`` to an absolute ``path``, creating parent directories."""

    @abc.abstractmethod
    def read_file(self, path: str) -> bytes:
        """Returns the bytes of the file at an absolute ``path``."""

    @abc.abstractmethod
    def destroy(self) -> None:
        """Stops the sandbox and frees everything it holds. Idempotent."""

    @abc.abstractmethod
    def status(self) -> SandboxStatus:
        """Current state of the sandbox."""

    def snapshot(self) -> str:
        """Saves the filesystem and returns a provider reference to it."""
        raise SandboxError(f"the {self.provider} sandbox cannot take snapshots", hint="use the modal provider")

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()


class SandboxSettingsBase(BaseModel):
    """Settings shared by every provider; each provider adds its own and a ``type``.

    The ``create`` method builds the provider and imports its SDK lazily, so that
    importing settings never imports ``docker`` or ``modal``.
    """

    model_config = ConfigDict(extra="forbid")

    image: str = Field(default="cloud-runs-sandbox:latest", description="Image the sandbox starts from.")
    cpu: float = Field(default=2.0, gt=0, description="CPU cores.")
    memory_mb: int = Field(default=4096, gt=0, description="Memory limit in MiB.")
    lifetime_seconds: int = Field(
        default=3600, gt=0, description="The sandbox ends itself after this long, even if the orchestrator is gone."
    )
    exec_timeout_seconds: int = Field(default=1800, gt=0, description="Default timeout of one command.")
    environment: dict[str, str] = Field(
        default_factory=dict, description="Non-secret environment variables for every command."
    )

    @abc.abstractmethod
    def create(self, run_id: str, labels: Mapping[str, str] | None = None) -> Sandbox:
        """Starts a sandbox labelled with ``run_id`` (and ``labels``)."""

    @abc.abstractmethod
    def list_sandboxes(self, labels: Mapping[str, str] | None = None) -> list[SandboxRef]:
        """Sandboxes of this provider carrying the project's labels (and ``labels``)."""

    @abc.abstractmethod
    def destroy_by_id(self, sandbox_id: str) -> None:
        """Destroys a sandbox found by :meth:`list_sandboxes`. Idempotent."""
