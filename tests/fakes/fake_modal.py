"""A small stand-in for the ``modal`` SDK, for tests without Modal credentials.

It offers the surface the project uses — ``Client.from_credentials``,
``App.lookup``, ``Image.from_registry``/``from_dockerfile``/``from_id``,
``Secret.from_dict``, ``Sandbox.create``/``from_id``/``list``, and on a
sandbox ``exec``/``terminate``/``poll``/``set_tags``/``get_tags``/
``snapshot_filesystem`` — and nothing else. Every call is first bound to the
INSTALLED ``modal`` package's real signature (``inspect.signature(...).bind``),
so a misspelt or removed keyword fails here as it would against Modal. Errors
are the real ``modal.exception`` classes.

Sandboxes are local processes in a directory (the local provider's machinery,
with its path mapping: ``/workspace`` lives under the sandbox's root), so
commands, streams, exit codes, timeouts and lifetimes behave for real. State
(apps, sandboxes and their tags) lives in a directory, so a second process (a
reaper) sees the same sandboxes.

Use: put this module in ``sys.modules["modal"]`` (the providers import
``modal`` inside their methods)::

    monkeypatch.setitem(sys.modules, "modal", fake_modal)
    fake_modal.configure(tmp_path)

Known differences from Modal: no isolation (local processes as the current
user), images are not built (``from_dockerfile`` only checks the file exists),
a process killed by a signal reports ``128 + signal``.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import uuid
from pathlib import Path

import modal as _real_modal
from modal import exception  # noqa: F401  (the real exception classes, as `modal.exception`)

from cloud_runs.sandboxes.local import LocalSandbox, LocalSandboxSettings

__all__ = ["App", "Client", "Image", "Sandbox", "Secret", "configure", "exception", "calls"]

_state = {"dir": Path(os.environ.get("FAKE_MODAL_STATE_DIR", Path(tempfile.gettempdir()) / "fake-modal"))}
#: Every call made through the fake: (qualified name, bound arguments).
calls: list[tuple[str, dict]] = []
_calls_lock = threading.Lock()


def configure(state_dir: str | Path) -> None:
    """Keeps the fake's apps, sandboxes and images under ``state_dir``."""
    _state["dir"] = Path(state_dir)
    calls.clear()


def _state_dir(kind: str) -> Path:
    path = _state["dir"] / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def _real(qualname: str):
    target = _real_modal
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def checked(qualname: str):
    """Binds every call to the real ``modal.<qualname>`` signature before running the fake."""
    signature = inspect.signature(_real(qualname))

    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)  # TypeError, exactly like the real SDK
            with _calls_lock:
                calls.append((qualname, dict(bound.arguments)))
            return function(*args, **kwargs)

        wrapper.real_qualname = qualname
        return wrapper

    return decorate


def _require(value, kind, name):
    if not isinstance(value, kind):
        raise TypeError(f"{name} must be a modal {kind.__name__}, got {type(value).__name__}")


class Client:
    def __init__(self, token_id: str) -> None:
        self.token_id = token_id

    @classmethod
    @checked("Client.from_credentials")
    def from_credentials(cls, token_id: str, token_secret: str) -> Client:
        if not token_id or not token_secret:
            raise exception.AuthError("Token missing")
        return cls(token_id)


class App:
    def __init__(self, name: str) -> None:
        self.name = name
        self.app_id = "ap-" + hashlib.sha256(name.encode()).hexdigest()[:20]

    @staticmethod
    @checked("App.lookup")
    def lookup(name, *, client=None, environment_name=None, create_if_missing=False) -> App:
        _require(client, Client, "client")
        marker = _state_dir("apps") / name
        if not marker.exists():
            if not create_if_missing:
                raise exception.NotFoundError(f"App '{name}' not found")
            marker.touch()
        return App(name)


class Image:
    def __init__(self, object_id: str, source: str) -> None:
        self.object_id = object_id
        self.source = source

    @staticmethod
    @checked("Image.from_registry")
    def from_registry(tag, secret=None, **kwargs) -> Image:
        return Image("im-" + hashlib.sha256(tag.encode()).hexdigest()[:20], tag)

    @staticmethod
    @checked("Image.from_dockerfile")
    def from_dockerfile(path, **kwargs) -> Image:
        if not Path(path).is_file():
            raise FileNotFoundError(path)
        return Image("im-" + hashlib.sha256(Path(path).read_bytes()).hexdigest()[:20], str(path))

    @classmethod
    @checked("Image.from_id")
    def from_id(cls, image_id, client=None) -> Image:
        if not (_state_dir("images") / image_id).exists():
            raise exception.NotFoundError(f"Image {image_id} not found")
        return cls(image_id, "snapshot")


class Secret:
    def __init__(self, values: dict) -> None:
        self.values = values

    @staticmethod
    @checked("Secret.from_dict")
    def from_dict(env_dict={}) -> Secret:  # noqa: B006 - mirrors the real signature
        return Secret({k: v for k, v in env_dict.items() if v is not None})


class _StreamReader:
    """``process.stdout``/``stderr``: iterate for chunks (bytes) or lines (text), or ``read()``."""

    def __init__(self, pipe, text: bool, root: str) -> None:
        self._pipe = pipe
        self._text = text
        # Output shows sandbox paths (/workspace/...), not the host directory behind them.
        self._root = root.encode()

    def __iter__(self):
        for line in iter(self._pipe.readline, b""):
            line = line.replace(self._root, b"")
            yield line.decode(errors="replace") if self._text else line

    def read(self):
        data = self._pipe.read()  # whole-stream reads carry file contents: left byte-exact
        return data.decode(errors="replace") if self._text else data


class _StreamWriter:
    def __init__(self, pipe) -> None:
        self._pipe = pipe

    @checked("io_streams.StreamWriter.write")
    def write(self, data) -> None:
        self._pipe.write(data.encode() if isinstance(data, str) else bytes(data))

    @checked("io_streams.StreamWriter.write_eof")
    def write_eof(self) -> None:
        self._pipe.close()

    @checked("io_streams.StreamWriter.drain")
    def drain(self) -> None:
        if not self._pipe.closed:
            self._pipe.flush()


class _ContainerProcess:
    def __init__(self, popen: subprocess.Popen, text: bool, timeout: int | None, root: str) -> None:
        self._popen = popen
        self.stdout = _StreamReader(popen.stdout, text, root)
        self.stderr = _StreamReader(popen.stderr, text, root)
        self.stdin = _StreamWriter(popen.stdin)
        self._timer = None
        if timeout:
            self._timer = threading.Timer(timeout, _kill_group, (popen.pid,))
            self._timer.daemon = True
            self._timer.start()

    @checked("container_process.ContainerProcess.wait")
    def wait(self) -> int:
        self._popen.wait()
        if self._timer:
            self._timer.cancel()
        return self.returncode

    @checked("container_process.ContainerProcess.poll")
    def poll(self) -> int | None:
        return None if self._popen.poll() is None else self.returncode

    @property
    def returncode(self) -> int | None:
        code = self._popen.returncode
        return None if code is None else (128 - code if code < 0 else code)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass


_TAGS_FILE = "modal-tags.json"


class Sandbox:
    """A fake ``modal.Sandbox`` backed by a local sandbox directory."""

    def __init__(self, local: LocalSandbox, env: dict, workdir: str) -> None:
        self._local = local
        self._env = env
        self._workdir = workdir
        self.object_id = "sb-" + local.id

    # -- class-level API -----------------------------------------------------

    @staticmethod
    @checked("Sandbox.create")
    def create(*args, app=None, tags=None, image=None, env=None, secrets=None, timeout=300, workdir=None,
               client=None, **options) -> Sandbox:
        _require(app, App, "app")
        _require(image, Image, "image")
        _require(client, Client, "client")
        for secret in secrets or ():
            _require(secret, Secret, "secrets[]")
        settings = LocalSandboxSettings(base_dir=str(_state_dir("sandboxes")), lifetime_seconds=int(timeout or 300))
        local = settings.create(run_id=f"modal-{uuid.uuid4().hex[:8]}")
        values = dict(env or {})
        for secret in secrets or ():
            values.update(secret.values)
        meta = {"app_id": app.app_id, "tags": dict(tags or {}), "env": values, "workdir": workdir or "/workspace",
                "image": image.object_id}
        (local.directory / _TAGS_FILE).write_text(json.dumps(meta))
        if workdir:
            local.host_path(workdir).mkdir(parents=True, exist_ok=True)
        return Sandbox(local, values, workdir or "/workspace")

    @staticmethod
    @checked("Sandbox.from_id")
    def from_id(sandbox_id, client=None) -> Sandbox:
        local_id = sandbox_id.removeprefix("sb-")
        directory = _state_dir("sandboxes") / local_id
        meta_file = directory / _TAGS_FILE
        if not sandbox_id.startswith("sb-") or not meta_file.is_file():
            raise exception.NotFoundError(f"Sandbox {sandbox_id} not found")
        meta = json.loads(meta_file.read_text())
        settings = LocalSandboxSettings(base_dir=str(_state_dir("sandboxes")))
        local = LocalSandbox(settings, local_id, directory, meta["tags"])
        return Sandbox(local, meta["env"], meta["workdir"])

    @staticmethod
    @checked("Sandbox.list")
    def list(*, app_id=None, tags=None, client=None):
        found = []
        for meta_file in sorted(_state_dir("sandboxes").glob(f"*/{_TAGS_FILE}")):
            try:
                meta = json.loads(meta_file.read_text())
            except (OSError, ValueError):
                continue
            if app_id is not None and meta["app_id"] != app_id:
                continue
            if all(meta["tags"].get(k) == v for k, v in (tags or {}).items()):
                found.append(Sandbox.from_id("sb-" + meta_file.parent.name))
        return iter(found)

    # -- instance API --------------------------------------------------------

    def _meta_file(self) -> Path:
        return self._local.directory / _TAGS_FILE

    @checked("Sandbox.exec")
    def exec(self, *args, timeout=None, workdir=None, env=None, secrets=None, text=True, bufsize=-1, **options):
        if self.poll() is not None:
            raise exception.SandboxTerminatedError(f"Sandbox {self.object_id} has already terminated")
        for secret in secrets or ():
            _require(secret, Secret, "secrets[]")
        local = self._local
        process_env = {k: os.environ[k] for k in local.settings.pass_env if k in os.environ}
        process_env.update({"HOME": str(local.root / "home" / "agent"), "TMPDIR": str(local.root / "tmp"),
                            "CLOUD_RUNS_LOCAL_SANDBOX": local.id})
        values = {**self._env, **(env or {})}
        for secret in secrets or ():
            values.update(secret.values)
        process_env.update({k: local._translate(str(v)) for k, v in values.items() if v is not None})
        popen = subprocess.Popen(
            [local._translate(a) for a in args],
            cwd=local.host_path(workdir or self._workdir),
            env=process_env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        with (local.directory / "pgids").open("a") as f:
            f.write(f"{popen.pid}\n")
        return _ContainerProcess(popen, text, timeout, str(local.root))

    @checked("Sandbox.terminate")
    def terminate(self, *, wait=False):
        self._local.settings.destroy_by_id(self._local.id)
        return None

    @checked("Sandbox.poll")
    def poll(self):
        return None if self._meta_file().is_file() else 0

    @checked("Sandbox.set_tags")
    def set_tags(self, tags, *, client=None) -> None:
        meta = json.loads(self._meta_file().read_text())
        meta["tags"] = dict(tags)
        self._meta_file().write_text(json.dumps(meta))

    @checked("Sandbox.get_tags")
    def get_tags(self) -> dict:
        try:
            return dict(json.loads(self._meta_file().read_text())["tags"])
        except FileNotFoundError as exc:
            raise exception.NotFoundError(f"Sandbox {self.object_id} not found") from exc

    @checked("Sandbox.snapshot_filesystem")
    def snapshot_filesystem(self, timeout=55, *, ttl=2592000) -> Image:
        image_id = "im-snap-" + uuid.uuid4().hex[:16]
        shutil.copytree(self._local.root, _state_dir("images") / image_id, symlinks=True)
        return Image(image_id, f"snapshot of {self.object_id}")
