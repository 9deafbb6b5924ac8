"""The Modal sandbox: a gVisor-isolated container on Modal (the production provider).

Each run gets one ``modal.Sandbox`` in the app ``app_name`` (created on first
use). The sandbox ends itself after ``lifetime_seconds`` (Modal's ``timeout``)
whatever happens to the orchestrator, and carries the ``cloud-runs.*`` labels
as Modal tags (set at creation, so it is never untagged), which is how the
reaper finds it (``Sandbox.list(app_id=, tags=)``).

Commands run through ``sb.exec`` as ``user`` (``agent`` by default, switched
with ``runuser`` because Modal starts processes as root), wrapped in
``timeout -s KILL`` so a timeout kills the command's process group; output is
read from stdout and stderr concurrently and delivered line by line. The
per-process ``env`` travels as an ephemeral ``modal.Secret`` rather than plain
exec environment. Files move through exec streams (``cat``), so they belong to
the sandbox user.

The SDK is imported inside each method (``import modal``), never at import
time. Tests without Modal credentials swap in ``tests.fakes.fake_modal`` by
putting it in ``sys.modules["modal"]``; that fake checks every call against the
installed SDK's real signatures.

Example:
    >>> from cloud_runs.sandboxes import ModalSandboxSettings
    >>> settings = ModalSandboxSettings(token_id="ak-...", token_secret="as-...")
    >>> with settings.create(run_id="demo") as sandbox:
    ...     sandbox.exec(["git", "--version"], on_output=print).exit_code
    stdout git version 2.47.3
    0
"""

from __future__ import annotations

import functools
import logging
import math
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr

from cloud_runs.sandboxes._common import (
    WRITE_FILE_SCRIPT,
    Deadline,
    LineSplitter,
    check_argv,
    check_sandbox_path,
    labels_match,
    sandbox_labels,
    timed_exec_result,
    under_kill_timeout,
)
from cloud_runs.sandboxes.base import (
    ExecResult,
    OutputCallback,
    Sandbox,
    SandboxError,
    SandboxRef,
    SandboxSettingsBase,
    SandboxStatus,
)

if TYPE_CHECKING:  # pragma: no cover
    import modal

logger = logging.getLogger(__name__)

PROVIDER = "modal"
# `timeout -s KILL` kills its own process group; the exit is reported as
# 128 + SIGKILL or as -SIGKILL depending on the layer that reports it.
KILLED_EXIT_CODES = (137, -9)
# Seconds Modal's own exec timeout leaves after the in-sandbox `timeout` fires.
EXEC_GRACE_SECONDS = 30
STDIN_CHUNK_BYTES = 1 << 20
CREDENTIALS_HINT = (
    "set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET (modal token new), or pass token_id/token_secret "
    "(the modal-credentials block)"
)
# Runs "$@" as the user named in $CLOUD_RUNS_USER (empty: as the sandbox's
# default user). The arguments stay arguments: nothing is parsed by the shell.
_AS_USER = (
    'u="$CLOUD_RUNS_USER"; unset CLOUD_RUNS_USER; '
    'if [ -z "$u" ] || [ "$(id -un)" = "$u" ]; then exec "$@"; fi; '
    'if ! id -u "$u" >/dev/null 2>&1; then echo "sandbox user $u does not exist in the image" >&2; exit 126; fi; '
    'exec runuser -u "$u" -- "$@"'
)


@functools.cache
def _base_image_context() -> Path:
    """The base image's build context, staged once per process (it never changes while running)."""
    from cloud_runs.images import stage_base_context

    context = Path(tempfile.mkdtemp(prefix="cloud-runs-modal-context-"))
    stage_base_context(context)
    return context


class ModalSandboxSettings(SandboxSettingsBase):
    """Settings of the Modal provider.

    ``image`` is a registry image name when ``image_source="registry"``; with
    ``image_source="dockerfile"`` (the default) Modal builds
    ``sandbox_images/base/Dockerfile`` with ``build_args`` (and caches it).

    Example:
        >>> ModalSandboxSettings(block_network=True).type
        'modal'
    """

    type: Literal["modal"] = "modal"
    app_name: str = Field(default="cloud-runs", description="Modal app the sandboxes belong to (created if missing).")
    token_id: SecretStr | None = Field(default=None, description="Modal token id; MODAL_TOKEN_ID when unset.")
    token_secret: SecretStr | None = Field(default=None, description="Modal token secret; MODAL_TOKEN_SECRET when unset.")
    environment_name: str | None = Field(default=None, description="Modal environment; the token's default when unset.")
    image_source: Literal["dockerfile", "registry"] = Field(
        default="dockerfile", description="Build sandbox_images/base/Dockerfile on Modal, or pull `image` from a registry."
    )
    build_args: dict[str, str] = Field(default_factory=dict, description="Build arguments of the base Dockerfile.")
    user: str | None = Field(default="agent", description="User commands run as; None keeps the sandbox's default.")
    workdir: str = Field(default="/workspace", description="Default working directory of commands.")
    idle_timeout_seconds: int | None = Field(default=None, gt=0, description="End the sandbox after this long idle.")
    runtime: Literal["gvisor", "vm"] | None = Field(default=None, description="Modal runtime; gVisor when unset.")
    region: str | None = Field(default=None, description="Modal region; any when unset.")
    block_network: bool = Field(default=False, description="No network at all.")
    outbound_cidr_allowlist: list[str] | None = Field(default=None, description="Only these CIDRs are reachable.")
    outbound_domain_allowlist: list[str] | None = Field(default=None, description="Only these domains are reachable.")

    # -- SDK plumbing --------------------------------------------------------

    def client(self) -> modal.Client:
        """A Modal client from the settings' or the environment's token."""
        import modal

        from cloud_runs.settings import load_settings

        token_id = self.token_id.get_secret_value() if self.token_id else ""
        token_secret = self.token_secret.get_secret_value() if self.token_secret else ""
        if not (token_id and token_secret):
            env = load_settings()
            token_id, token_secret = env.modal_token_id, env.modal_token_secret
        if not (token_id and token_secret):
            raise SandboxError("no Modal credentials: MODAL_TOKEN_ID/MODAL_TOKEN_SECRET are not set", hint=CREDENTIALS_HINT)
        try:
            return modal.Client.from_credentials(token_id, token_secret)
        except modal.exception.Error as exc:
            # The message is Modal's; it never contains the token itself.
            raise SandboxError(f"Modal refused the credentials: {exc}", hint=CREDENTIALS_HINT) from exc

    def app(self, client: modal.Client, *, create_if_missing: bool = True) -> modal.App:
        import modal

        return modal.App.lookup(
            self.app_name, client=client, environment_name=self.environment_name, create_if_missing=create_if_missing
        )

    def modal_image(self) -> modal.Image:
        """The ``modal.Image`` sandboxes start from."""
        import modal

        if self.image_source == "registry":
            return modal.Image.from_registry(self.image)
        context = _base_image_context()
        return modal.Image.from_dockerfile(
            context / "Dockerfile", context_dir=context, build_args=dict(self.build_args)
        )

    # -- provider ------------------------------------------------------------

    def create(self, run_id: str, labels: Mapping[str, str] | None = None) -> ModalSandbox:
        """Starts the Modal sandbox.

        Raises:
            SandboxError: No credentials, or Modal refused the sandbox.
        """
        import modal

        all_labels = sandbox_labels(run_id, self.lifetime_seconds, labels)
        client = self.client()
        options: dict[str, Any] = {}
        if self.outbound_cidr_allowlist is not None:
            options["outbound_cidr_allowlist"] = list(self.outbound_cidr_allowlist)
        if self.outbound_domain_allowlist is not None:
            options["outbound_domain_allowlist"] = list(self.outbound_domain_allowlist)
        if self.runtime is not None:
            options["runtime"] = self.runtime
        if self.region is not None:
            options["region"] = self.region
        try:
            sandbox = modal.Sandbox.create(
                "sleep",
                str(self.lifetime_seconds),
                app=self.app(client),
                image=self.modal_image(),
                tags=dict(all_labels),
                env=dict(self.environment) or None,
                timeout=self.lifetime_seconds,
                idle_timeout=self.idle_timeout_seconds,
                workdir=self.workdir,
                cpu=self.cpu,
                memory=self.memory_mb,
                block_network=self.block_network,
                client=client,
                environment_name=self.environment_name,
                **options,
            )
        except modal.exception.Error as exc:
            raise SandboxError(f"Modal refused the sandbox for run {run_id}: {exc}", hint="check the Modal settings and quota") from exc
        return ModalSandbox(self, client, sandbox, all_labels)

    def list_sandboxes(self, labels: Mapping[str, str] | None = None) -> list[SandboxRef]:
        """Running sandboxes of the app carrying the project's tags (and ``labels``)."""
        import modal

        client = self.client()
        try:
            app = self.app(client, create_if_missing=False)
        except modal.exception.NotFoundError:
            return []
        found = []
        for sandbox in modal.Sandbox.list(app_id=app.app_id, tags=dict(labels) if labels else None, client=client):
            tags = sandbox.get_tags()
            if labels_match(tags, labels):
                found.append(SandboxRef(PROVIDER, sandbox.object_id, dict(tags)))
        return found

    def destroy_by_id(self, sandbox_id: str) -> None:
        """Terminates the sandbox. Idempotent."""
        import modal

        client = self.client()
        try:
            modal.Sandbox.from_id(sandbox_id, client=client).terminate()
        except modal.exception.NotFoundError:
            return


class ModalSandbox(Sandbox):
    """A Modal sandbox; made by :meth:`ModalSandboxSettings.create`."""

    provider = PROVIDER

    def __init__(
        self,
        settings: ModalSandboxSettings,
        client: modal.Client,
        sandbox: modal.Sandbox,
        labels: Mapping[str, str],
    ) -> None:
        self.settings = settings
        self.client = client
        self.sandbox = sandbox
        self.id = sandbox.object_id
        self.labels = dict(labels)
        self._lock = threading.Lock()
        self._destroyed = False

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
        """Runs ``argv`` with ``sb.exec``; a timeout kills its process group."""
        args = check_argv(argv)
        seconds = float(timeout if timeout is not None else self.settings.exec_timeout_seconds)
        deadline = Deadline(seconds)
        lock = threading.Lock()
        process = self._start(
            under_kill_timeout(args, seconds),
            cwd=cwd, env=env, user=user, modal_timeout=math.ceil(seconds) + EXEC_GRACE_SECONDS,
        )
        readers = [
            threading.Thread(target=_pump, args=(stream, LineSplitter(name, on_output, lock)), daemon=True)
            for name, stream in (("stdout", process.stdout), ("stderr", process.stderr))
        ]
        for reader in readers:
            reader.start()
        code = process.wait()
        for reader in readers:
            reader.join(EXEC_GRACE_SECONDS)
        return timed_exec_result(code, deadline, KILLED_EXIT_CODES)

    def write_file(self, path: str, data: bytes, *, mode: int = 0o644) -> None:
        check_sandbox_path(path)
        process = self._start(["sh", "-c", WRITE_FILE_SCRIPT, "write_file", path, format(mode, "o")])
        view = memoryview(bytes(data))
        for start in range(0, len(view), STDIN_CHUNK_BYTES):
            process.stdin.write(view[start : start + STDIN_CHUNK_BYTES].tobytes())
            process.stdin.drain()
        process.stdin.write_eof()
        process.stdin.drain()
        errors = process.stderr.read()
        if process.wait() != 0:
            message = errors.decode(errors="replace").strip()
            raise SandboxError(f"could not write {path} in sandbox {self.id}: {message}", hint="check the path is writable by the sandbox user")

    def read_file(self, path: str) -> bytes:
        check_sandbox_path(path)
        process = self._start(["cat", "--", path])
        chunks: list[bytes] = []
        reader = threading.Thread(target=lambda: chunks.append(process.stdout.read()), daemon=True)
        reader.start()
        errors = process.stderr.read()
        reader.join()
        if process.wait() != 0:
            message = errors.decode(errors="replace").strip()
            raise SandboxError(f"could not read {path} in sandbox {self.id}: {message}", hint="check the path")
        return b"".join(chunks)

    def destroy(self) -> None:
        import modal

        with self._lock:
            if self._destroyed:
                return
            self._destroyed = True
        try:
            self.sandbox.terminate()
        except modal.exception.NotFoundError:
            pass

    def status(self) -> SandboxStatus:
        if self._destroyed:
            return SandboxStatus.DESTROYED
        return SandboxStatus.RUNNING if self.sandbox.poll() is None else SandboxStatus.STOPPED

    def snapshot(self) -> str:
        """Snapshots the filesystem; returns the Modal image id (``modal.Image.from_id``)."""
        return self.sandbox.snapshot_filesystem().object_id

    def _start(
        self,
        argv: list[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
        modal_timeout: int | None = None,
    ):
        import modal

        if self._destroyed:
            raise SandboxError(f"sandbox {self.id} is destroyed", hint="create a new sandbox")
        run_as = user if user is not None else self.settings.user
        secret_env = {"CLOUD_RUNS_USER": run_as or "", **(env or {})}
        try:
            return self.sandbox.exec(
                "sh", "-c", _AS_USER, "as-user", *argv,
                workdir=cwd or self.settings.workdir,
                secrets=[modal.Secret.from_dict(secret_env)],
                timeout=modal_timeout,
                text=False,
            )
        except modal.exception.Error as exc:
            raise SandboxError(
                f"could not run {argv[0]!r} in Modal sandbox {self.id}: {exc}",
                hint="the sandbox may have ended (lifetime_seconds) — create a new one",
            ) from exc


def _pump(stream, splitter: LineSplitter) -> None:
    try:
        for chunk in stream:
            splitter.feed(chunk)
    except Exception as exc:  # a broken stream must not hide the exit code
        logger.debug("output stream ended with %r", exc)
    finally:
        splitter.close()
