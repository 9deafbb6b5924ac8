"""The Docker sandbox: one hardened container per run (development and CI).

The container runs as the non-root user ``agent`` (uid 1000) with every
capability dropped, ``no-new-privileges``, limits on processes, memory and CPU,
no host mounts and never the Docker socket. Its PID 1 is ``sleep <lifetime>``
under Docker's init, and it is started with ``auto_remove``: when the lifetime
ends the container stops and Docker deletes it, even if the orchestrator is
long gone. The reaper finds what is left through the ``cloud-runs.*`` labels.

Commands run through ``docker exec``, wrapped in ``timeout -s KILL`` so a
timeout kills the command's whole process group inside the container. Their
output is read from the multiplexed exec stream and delivered line by line as
it arrives. Files move through exec streams too (``cat``), which keeps
ownership with the sandbox user and works with a read-only root filesystem,
where ``docker cp`` is refused.

Example:
    >>> from cloud_runs.sandboxes import DockerSandboxSettings
    >>> settings = DockerSandboxSettings(image="cloud-runs-sandbox:latest", network_mode="none")
    >>> with settings.create(run_id="demo") as sandbox:
    ...     sandbox.exec(["id", "-un"], on_output=print).exit_code
    stdout agent
    0
"""

from __future__ import annotations

import logging
import shlex
import socket
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from cloud_runs.sandboxes._common import (
    WRITE_FILE_SCRIPT,
    Deadline,
    LineSplitter,
    check_argv,
    check_sandbox_path,
    labels_match,
    refuse_in_production,
    sandbox_labels,
    timed_exec_result,
    under_kill_timeout,
)
from cloud_runs.sandboxes.base import (
    RUN_ID_LABEL,
    ExecResult,
    OutputCallback,
    Sandbox,
    SandboxError,
    SandboxRef,
    SandboxSettingsBase,
    SandboxStatus,
)

if TYPE_CHECKING:  # pragma: no cover
    import docker

logger = logging.getLogger(__name__)

PROVIDER = "docker"
# `timeout -s KILL` kills its own process group too, so a timed-out command
# ends with 128 + SIGKILL.
KILLED_EXIT_CODE = 137
# Extra seconds the orchestrator waits for the stream after the in-container
# timeout should have fired.
STREAM_GRACE_SECONDS = 30.0
START_HINT = "start one with scripts/docker-engine start (or your Docker Desktop), then retry"
BUILD_HINT = "build it with scripts/build-images (or cloud-runs images build)"


class DockerSandboxSettings(SandboxSettingsBase):
    """Settings of the Docker provider.

    Example:
        >>> DockerSandboxSettings(network_mode="none").type
        'docker'
    """

    type: Literal["docker"] = "docker"
    user: str = Field(default="agent", description="User the container and its commands run as (never root).")
    network_mode: Literal["bridge", "none", "host"] = Field(
        default="bridge",
        description="bridge (default), none (no network), host (only for tests reaching a server on 127.0.0.1).",
    )
    pids_limit: int = Field(default=1024, gt=0, description="Most processes the container may hold.")
    read_only_root: bool = Field(
        default=False, description="Mount the root filesystem read-only (with tmpfs for /workspace, /tmp, /home/agent)."
    )
    user_uid: int = Field(default=1000, gt=0, description="uid/gid of `user` in the image (owner of the tmpfs mounts).")
    tmpfs_size_mb: int = Field(default=2048, gt=0, description="Size of each tmpfs when read_only_root is set.")
    workdir: str = Field(default="/workspace", description="Default working directory of commands.")
    docker_host: str | None = Field(default=None, description="Docker engine URL; DOCKER_HOST/the default socket when unset.")
    api_timeout_seconds: int = Field(default=60, gt=0, description="Timeout of each Docker API call.")

    def client(self) -> docker.DockerClient:
        """A Docker client that answers, or a :class:`SandboxError` saying how to start one."""
        import docker
        from docker.errors import DockerException

        try:
            if self.docker_host:
                client = docker.DockerClient(base_url=self.docker_host, timeout=self.api_timeout_seconds)
            else:
                client = docker.from_env(timeout=self.api_timeout_seconds)
            client.ping()
        except DockerException as exc:
            raise SandboxError(f"the Docker engine does not answer ({exc})", hint=START_HINT) from exc
        return client

    def create(self, run_id: str, labels: Mapping[str, str] | None = None) -> DockerSandbox:
        """Starts the container.

        Raises:
            ProductionRefusal: ``CLOUD_RUNS_ENVIRONMENT=production``.
            SandboxError: No engine answers, the image is missing, or Docker
                refused the container.
        """
        refuse_in_production(PROVIDER)
        if self.user in ("root", "0", "0:0"):
            raise SandboxError("the docker sandbox never runs as root", hint="set user to agent (the image's user)")
        all_labels = sandbox_labels(run_id, self.lifetime_seconds, labels)
        from docker.errors import APIError, DockerException, ImageNotFound

        client = self.client()
        try:
            client.images.get(self.image)
        except ImageNotFound as exc:
            raise SandboxError(f"the sandbox image {self.image} does not exist", hint=BUILD_HINT) from exc
        options: dict[str, Any] = {}
        if self.read_only_root:
            size = f"size={self.tmpfs_size_mb}m"
            options["read_only"] = True
            options["tmpfs"] = {
                path: f"rw,exec,nosuid,nodev,{size},uid={self.user_uid},gid={self.user_uid}" for path in ("/workspace", "/tmp", "/home/agent")
            }
        name = f"cloud-runs-{run_id[:40]}-{uuid.uuid4().hex[:8]}"
        try:
            container = client.containers.run(
                self.image,
                command=["sleep", str(self.lifetime_seconds)],
                name=name,
                detach=True,
                init=True,  # reaps the agent's zombies and forwards signals
                auto_remove=True,  # gone as soon as its lifetime ends
                user=self.user,
                working_dir=self.workdir,
                environment=dict(self.environment),
                labels=all_labels,
                network_mode=self.network_mode,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                pids_limit=self.pids_limit,
                mem_limit=f"{self.memory_mb}m",
                memswap_limit=f"{self.memory_mb}m",
                nano_cpus=int(self.cpu * 1e9),
                **options,
            )
        except (APIError, DockerException) as exc:
            raise SandboxError(
                f"Docker refused to start the sandbox container from {self.image}: {exc}",
                hint="check cpu/memory_mb against this machine and that the image has user agent",
            ) from exc
        return DockerSandbox(self, client, container.id, name, all_labels)

    def list_sandboxes(self, labels: Mapping[str, str] | None = None) -> list[SandboxRef]:
        """Containers (running or not) carrying the project's labels (and ``labels``)."""
        client = self.client()
        filters = [RUN_ID_LABEL] + [f"{k}={v}" for k, v in (labels or {}).items()]
        found = []
        for container in client.containers.list(all=True, filters={"label": filters}):
            container_labels = container.labels or {}
            if labels_match(container_labels, labels):
                status = SandboxStatus.RUNNING if container.status == "running" else SandboxStatus.STOPPED
                found.append(SandboxRef(PROVIDER, container.id, dict(container_labels), status))
        return found

    def destroy_by_id(self, sandbox_id: str) -> None:
        """Removes the container (killing it first). Idempotent."""
        _remove_container(self.client(), sandbox_id)


def _remove_container(client: docker.DockerClient, container_id: str) -> None:
    from docker.errors import APIError, NotFound

    try:
        client.api.remove_container(container_id, force=True)
    except NotFound:
        return
    except APIError as exc:
        # Removal already under way (auto_remove or another cleanup path).
        if exc.status_code == 409 or "already in progress" in str(exc):
            return
        raise SandboxError(f"could not remove sandbox container {container_id[:12]}: {exc}", hint=START_HINT) from exc


class DockerSandbox(Sandbox):
    """A Docker sandbox; made by :meth:`DockerSandboxSettings.create`."""

    provider = PROVIDER

    def __init__(
        self,
        settings: DockerSandboxSettings,
        client: docker.DockerClient,
        container_id: str,
        name: str,
        labels: Mapping[str, str],
    ) -> None:
        self.settings = settings
        self.client = client
        self.id = container_id
        self.name = name
        self.labels = dict(labels)
        self._lock = threading.Lock()
        self._destroyed = False

    # -- interface -----------------------------------------------------------

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
        """Runs ``argv`` with ``docker exec``; a timeout kills its process group."""
        args = check_argv(argv)
        seconds = float(timeout if timeout is not None else self.settings.exec_timeout_seconds)
        deadline = Deadline(seconds)
        wrapped = under_kill_timeout(args, seconds)
        lock = threading.Lock()
        splitters = {1: LineSplitter("stdout", on_output, lock), 2: LineSplitter("stderr", on_output, lock)}
        exec_id, stream_ended = self._run(
            wrapped, cwd=cwd, env=env, user=user, stdin=None, wait_seconds=seconds + STREAM_GRACE_SECONDS,
            on_frame=lambda stream, data: splitters[stream].feed(data) if stream in splitters else None,
        )
        for splitter in splitters.values():
            splitter.close()
        if not stream_ended:
            return ExecResult(exit_code=-1, timed_out=True, duration_seconds=deadline.elapsed())
        return timed_exec_result(self._exit_code(exec_id), deadline, (KILLED_EXIT_CODE,))

    def write_file(self, path: str, data: bytes, *, mode: int = 0o644) -> None:
        check_sandbox_path(path)
        errors: list[bytes] = []
        exec_id, _ = self._run(
            ["sh", "-c", WRITE_FILE_SCRIPT, "write_file", path, format(mode, "o")],
            stdin=bytes(data), wait_seconds=self.settings.api_timeout_seconds,
            on_frame=lambda stream, chunk: errors.append(chunk) if stream == 2 else None,
        )
        if self._exit_code(exec_id) != 0:
            message = b"".join(errors).decode(errors="replace").strip()
            raise SandboxError(f"could not write {path} in sandbox {self.name}: {message}", hint="check the path is writable by the sandbox user")

    def read_file(self, path: str) -> bytes:
        check_sandbox_path(path)
        chunks: list[bytes] = []
        errors: list[bytes] = []
        exec_id, _ = self._run(
            ["cat", "--", path], wait_seconds=self.settings.api_timeout_seconds,
            on_frame=lambda stream, chunk: (chunks if stream == 1 else errors).append(chunk),
        )
        if self._exit_code(exec_id) != 0:
            message = b"".join(errors).decode(errors="replace").strip()
            raise SandboxError(f"could not read {path} in sandbox {self.name}: {message}", hint="check the path")
        return b"".join(chunks)

    def destroy(self) -> None:
        with self._lock:
            if self._destroyed:
                return
            self._destroyed = True
        _remove_container(self.client, self.id)

    def status(self) -> SandboxStatus:
        from docker.errors import NotFound

        if self._destroyed:
            return SandboxStatus.DESTROYED
        try:
            state = self.client.api.inspect_container(self.id)["State"]
        except NotFound:
            return SandboxStatus.DESTROYED
        return SandboxStatus.RUNNING if state.get("Running") else SandboxStatus.STOPPED

    # -- plumbing ------------------------------------------------------------

    def _run(
        self,
        argv: list[str],
        *,
        on_frame,
        wait_seconds: float,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
        stdin: bytes | None = None,
    ) -> tuple[str, bool]:
        """Starts an exec, feeds ``stdin``, passes each output frame to ``on_frame``.

        Returns the exec id and whether the stream ended within ``wait_seconds``.
        """
        from docker.errors import APIError, NotFound
        from docker.utils.socket import frames_iter

        if self._destroyed:
            raise SandboxError(f"sandbox {self.name} is destroyed", hint="create a new sandbox")
        api = self.client.api
        try:
            exec_id = api.exec_create(
                self.id,
                argv,
                stdout=True,
                stderr=True,
                stdin=stdin is not None,
                tty=False,
                environment={**self.settings.environment, **(env or {})},
                workdir=cwd or self.settings.workdir,
                user=user or self.settings.user,
            )["Id"]
            sock = api.exec_start(exec_id, socket=True)
        except NotFound as exc:
            raise SandboxError(
                f"sandbox container {self.name} is gone (destroyed or its lifetime ended)",
                hint="create a new sandbox (or raise lifetime_seconds)",
            ) from exc
        except APIError as exc:
            raise SandboxError(f"docker exec {shlex.join(argv[:4])}... failed in {self.name}: {exc}", hint="check the sandbox is running") from exc
        raw = getattr(sock, "_sock", sock)
        try:
            raw.settimeout(wait_seconds)
            if stdin is not None:
                raw.sendall(stdin)
                raw.shutdown(socket.SHUT_WR)  # end of the process's stdin
            for stream, data in frames_iter(sock, tty=False):
                on_frame(stream, data)
        except (socket.timeout, TimeoutError):
            return exec_id, False
        finally:
            sock.close()
        return exec_id, True

    def _exit_code(self, exec_id: str) -> int:
        # The stream can end a moment before Docker records the exit.
        deadline = Deadline(10.0)
        while True:
            info = self.client.api.exec_inspect(exec_id)
            if not info.get("Running") and info.get("ExitCode") is not None:
                return int(info["ExitCode"])
            if not deadline.remaining():
                return -1
            time.sleep(0.02)
