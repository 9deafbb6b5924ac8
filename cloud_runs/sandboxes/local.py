"""The local sandbox: plain processes in a temporary directory. It ISOLATES NOTHING.

Commands run as the orchestrator's own user, on the host, with the host's
network and filesystem within reach. Use it to develop and test agents quickly
on a trusted machine; never for untrusted code. It refuses to start when
``CLOUD_RUNS_ENVIRONMENT=production``.

Paths: every provider sees the same sandbox paths (``/workspace/repo``,
``/tmp/cloud-runs/prompt.md``, ``/home/agent``). The local sandbox maps the
prefixes in :attr:`LocalSandboxSettings.mapped_paths` under its root directory:
``/workspace/repo`` is ``<root>/workspace/repo`` on the host. The mapping
applies to ``write_file``/``read_file`` paths, to ``cwd``, and to every argv
element and env value where a mapped prefix starts a path (``/workspace/x``,
``--out=/workspace/x``, ``cd /workspace && make``). Host paths elsewhere (a
``/tmp/pytest-.../remote.git`` URL, say) are left alone. Output lines get the
root stripped again, so ``pwd`` prints ``/workspace/repo`` as in the other
providers. ``HOME`` is ``<root>/home/agent`` and ``TMPDIR`` is ``<root>/tmp``.
Only a few host variables (``pass_env``) reach the processes.

Lifetime: :meth:`LocalSandboxSettings.create` starts a detached watchdog
process that, when the lifetime ends, kills every process the sandbox started
(found by an environment marker in ``/proc``, or by process group elsewhere)
and removes the directory, even when the orchestrator is gone. A marker file
with the labels (``<base_dir>/<id>/labels.json``) lets
:meth:`LocalSandboxSettings.list_sandboxes` find sandboxes left behind.

Example:
    >>> from cloud_runs.sandboxes import LocalSandboxSettings
    >>> with LocalSandboxSettings().create(run_id="demo") as sandbox:
    ...     sandbox.write_file("/workspace/hello.txt", b"hi\\n")
    ...     sandbox.exec(["cat", "/workspace/hello.txt"], on_output=print).exit_code
    stdout hi
    0
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import Field

from cloud_runs.sandboxes import _local_watchdog
from cloud_runs.sandboxes._common import (
    Deadline,
    LineSplitter,
    check_argv,
    check_sandbox_path,
    labels_match,
    refuse_in_production,
    sandbox_labels,
)
from cloud_runs.sandboxes.base import (
    EXPIRES_AT_LABEL,
    ExecResult,
    OutputCallback,
    Sandbox,
    SandboxError,
    SandboxRef,
    SandboxSettingsBase,
    SandboxStatus,
)

logger = logging.getLogger(__name__)

PROVIDER = "local"
MARKER_VARIABLE = "CLOUD_RUNS_LOCAL_SANDBOX"
LABELS_FILE = "labels.json"
READER_JOIN_SECONDS = 5.0


def default_base_dir() -> str:
    """``$TMPDIR/cloud-runs-local-sandboxes`` (per machine, shared by every run)."""
    return str(Path(tempfile.gettempdir()) / "cloud-runs-local-sandboxes")


class LocalSandboxSettings(SandboxSettingsBase):
    """Settings of the local provider (development only: isolates nothing).

    ``image``, ``cpu`` and ``memory_mb`` are accepted for a uniform interface
    and ignored: processes run on the host as they are.

    Example:
        >>> settings = LocalSandboxSettings(lifetime_seconds=600)
        >>> settings.type
        'local'
    """

    type: Literal["local"] = "local"
    base_dir: str = Field(
        default_factory=default_base_dir,
        description="Host directory holding one subdirectory per local sandbox.",
    )
    mapped_paths: tuple[str, ...] = Field(
        default=("/workspace", "/tmp/cloud-runs", "/home/agent"),
        description="Sandbox path prefixes mapped under the sandbox's root directory.",
    )
    pass_env: tuple[str, ...] = Field(
        default=("PATH", "LANG", "LC_ALL", "TZ", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS"),
        description="Host environment variables the sandbox's processes inherit (nothing else does).",
    )

    def create(self, run_id: str, labels: Mapping[str, str] | None = None) -> LocalSandbox:
        """Makes the sandbox directory and starts its watchdog.

        Raises:
            ProductionRefusal: ``CLOUD_RUNS_ENVIRONMENT=production``.
            InputError: ``run_id`` cannot be a label.
        """
        refuse_in_production(PROVIDER)
        for prefix in self.mapped_paths:
            check_sandbox_path(prefix)
        all_labels = sandbox_labels(run_id, self.lifetime_seconds, labels)
        sandbox_id = f"local-{run_id[:40]}-{uuid.uuid4().hex[:8]}"
        directory = Path(self.base_dir) / sandbox_id
        root = directory / "root"
        for prefix in (*self.mapped_paths, "/tmp"):
            (root / prefix.lstrip("/")).mkdir(parents=True, exist_ok=True)
        (directory / LABELS_FILE).write_text(json.dumps(all_labels, indent=2))
        logger.warning(
            "local sandbox %s isolates nothing: commands run on this host as %s", sandbox_id, _current_user()
        )
        expires_at = datetime.fromisoformat(all_labels[EXPIRES_AT_LABEL]).timestamp()
        watchdog = subprocess.Popen(
            [sys.executable, _local_watchdog.__file__, str(directory), _marker(sandbox_id), str(expires_at)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # survives the orchestrator's death and its signals
            close_fds=True,
        )
        return LocalSandbox(self, sandbox_id, directory, all_labels, watchdog)

    def list_sandboxes(self, labels: Mapping[str, str] | None = None) -> list[SandboxRef]:
        """Local sandboxes whose marker files carry the project's labels (and ``labels``)."""
        found = []
        base = Path(self.base_dir)
        if not base.is_dir():
            return found
        for labels_file in sorted(base.glob(f"*/{LABELS_FILE}")):
            try:
                sandbox_labels_found = json.loads(labels_file.read_text())
            except (OSError, ValueError):
                continue  # being created or removed right now
            if labels_match(sandbox_labels_found, labels):
                found.append(SandboxRef(PROVIDER, labels_file.parent.name, sandbox_labels_found))
        return found

    def destroy_by_id(self, sandbox_id: str) -> None:
        """Kills the sandbox's processes and removes its directory. Idempotent."""
        if "/" in sandbox_id or sandbox_id in ("", ".", ".."):
            raise SandboxError(f"{sandbox_id!r} is not a local sandbox id", hint="pass an id from list_sandboxes()")
        directory = Path(self.base_dir) / sandbox_id
        _local_watchdog.kill_sandbox_processes(str(directory), _marker(sandbox_id))
        shutil.rmtree(directory, ignore_errors=True)


class LocalSandbox(Sandbox):
    """A local sandbox; made by :meth:`LocalSandboxSettings.create`."""

    provider = PROVIDER

    def __init__(
        self,
        settings: LocalSandboxSettings,
        sandbox_id: str,
        directory: Path,
        labels: Mapping[str, str],
        watchdog: subprocess.Popen[bytes] | None = None,
    ) -> None:
        self.settings = settings
        self.id = sandbox_id
        self.labels = dict(labels)
        self.directory = directory
        self.root = directory / "root"
        self._watchdog = watchdog
        self._lock = threading.Lock()
        self._destroyed = False
        prefixes = sorted(settings.mapped_paths, key=len, reverse=True)
        # A mapped prefix starting a path: not preceded by a path character,
        # followed by "/" or the end of the path.
        self._path_pattern = re.compile(
            r"(?<![\w.~/\-])(" + "|".join(re.escape(p.rstrip("/")) for p in prefixes) + r")(?=/|$|[^\w.\-])"
        )

    # -- paths ---------------------------------------------------------------

    def host_path(self, path: str) -> Path:
        """The host path behind sandbox ``path`` (``/workspace/x`` -> ``<root>/workspace/x``).

        Raises:
            SandboxError: ``path`` is outside every mapped prefix.
        """
        check_sandbox_path(path)
        normalized = os.path.normpath(path)
        root = str(self.root)
        if normalized == root or normalized.startswith(root + "/"):
            return Path(normalized)
        for prefix in self.settings.mapped_paths:
            prefix = prefix.rstrip("/")
            if normalized == prefix or normalized.startswith(prefix + "/"):
                return self.root / normalized.lstrip("/")
        raise SandboxError(
            f"{path} is outside the local sandbox's mapped paths ({', '.join(self.settings.mapped_paths)})",
            hint="use a path under one of them, or add its prefix to LocalSandboxSettings.mapped_paths",
        )

    def _translate(self, value: str) -> str:
        return self._path_pattern.sub(lambda m: str(self.root) + m.group(1), value)

    def _untranslate(self, line: str) -> str:
        return line.replace(str(self.root), "")

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
        """Runs ``argv`` as a host process in its own process group.

        ``user`` is ignored: everything runs as the orchestrator's user. On
        timeout the whole process group is killed with SIGKILL.
        """
        args = [self._translate(a) for a in check_argv(argv)]
        self._require_running()
        workdir = self.host_path(cwd or "/workspace")
        if not workdir.is_dir():
            raise SandboxError(f"working directory {cwd} does not exist in sandbox {self.id}", hint="create it first")
        if user is not None:
            logger.debug("local sandbox ignores user=%s; it runs as %s", user, _current_user())
        process_env = {k: os.environ[k] for k in self.settings.pass_env if k in os.environ}
        process_env.update(
            {
                "HOME": str(self.root / "home" / "agent"),
                "TMPDIR": str(self.root / "tmp"),
                MARKER_VARIABLE: self.id,
            }
        )
        process_env.setdefault("PATH", os.defpath)
        for key, value in {**self.settings.environment, **(env or {})}.items():
            process_env[key] = self._translate(str(value))
        deadline = Deadline(timeout if timeout is not None else self.settings.exec_timeout_seconds)
        try:
            process = subprocess.Popen(
                args,
                cwd=workdir,
                env=process_env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # one process group to kill on timeout
            )
        except OSError as exc:
            raise SandboxError(f"could not start {argv[0]!r} in sandbox {self.id}: {exc}", hint="check the program exists on PATH") from exc
        with (self.directory / "pgids").open("a") as f:
            f.write(f"{process.pid}\n")
        callback = None
        if on_output is not None:
            callback = lambda stream, line: on_output(stream, self._untranslate(line))  # noqa: E731
        lock = threading.Lock()
        readers = [
            threading.Thread(target=_pump, args=(pipe, LineSplitter(name, callback, lock)), daemon=True)
            for name, pipe in (("stdout", process.stdout), ("stderr", process.stderr))
        ]
        for reader in readers:
            reader.start()
        timed_out = False
        try:
            process.wait(timeout=deadline.remaining())
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(process.pid)
            process.wait()
        for reader in readers:
            reader.join(READER_JOIN_SECONDS)
        code = process.returncode
        exit_code = -1 if timed_out else (128 - code if code < 0 else code)
        return ExecResult(exit_code=exit_code, timed_out=timed_out, duration_seconds=deadline.elapsed())

    def write_file(self, path: str, data: bytes, *, mode: int = 0o644) -> None:
        target = self.host_path(path)
        self._require_running()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(mode)

    def read_file(self, path: str) -> bytes:
        target = self.host_path(path)
        self._require_running()
        try:
            return target.read_bytes()
        except FileNotFoundError as exc:
            raise SandboxError(f"{path} does not exist in sandbox {self.id}", hint="check the path") from exc

    def destroy(self) -> None:
        with self._lock:
            if self._destroyed:
                return
            self._destroyed = True
        self.settings.destroy_by_id(self.id)
        if self._watchdog is None:  # attached later (from a marker file): no watchdog handle
            return
        if self._watchdog.poll() is None:
            self._watchdog.kill()
        try:
            self._watchdog.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL does not fail
            pass

    def status(self) -> SandboxStatus:
        if self._destroyed or not self.directory.is_dir():
            return SandboxStatus.DESTROYED
        return SandboxStatus.RUNNING

    def _require_running(self) -> None:
        if self.status() is not SandboxStatus.RUNNING:
            raise SandboxError(
                f"local sandbox {self.id} is destroyed or its lifetime ended",
                hint="create a new sandbox (or raise lifetime_seconds)",
            )


def _pump(pipe, splitter: LineSplitter) -> None:
    # read1 returns as soon as some bytes arrive, so lines stream as produced.
    try:
        while chunk := pipe.read1(65536):
            splitter.feed(chunk)
    except (OSError, ValueError):
        pass
    finally:
        splitter.close()
        pipe.close()


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass


def _marker(sandbox_id: str) -> str:
    return f"{MARKER_VARIABLE}={sandbox_id}"


def _current_user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):  # pragma: no cover - not on POSIX
        return str(os.getuid())

