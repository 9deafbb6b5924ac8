"""Helpers every provider shares: labels, argument checks, line splitting.

Kept free of any SDK import so providers can use it at import time.
"""

from __future__ import annotations

import codecs
import re
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone

from cloud_runs.errors import InputError, ProductionRefusal
from cloud_runs.sandboxes.base import (
    CREATED_AT_LABEL,
    EXPIRES_AT_LABEL,
    RUN_ID_LABEL,
    ExecResult,
    OutputCallback,
)

#: Writes stdin to $1 with mode $2, creating parent directories (one exec per file).
WRITE_FILE_SCRIPT = 'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"'


def under_kill_timeout(args: Sequence[str], seconds: float) -> list[str]:
    """``args`` under coreutils' ``timeout``: SIGKILL when ``seconds`` pass, inside the sandbox,
    so a command ends on time even if the orchestrator's connection is gone."""
    return ["timeout", "-s", "KILL", f"{seconds:.3f}", *args]


def timed_exec_result(code: int, deadline: Deadline, killed_codes: Sequence[int]) -> ExecResult:
    """The result of a command run :func:`under_kill_timeout`: killed at its deadline means timed out."""
    seconds = deadline.seconds or 0.0
    timed_out = code in killed_codes and deadline.elapsed() >= seconds - 0.05
    return ExecResult(exit_code=-1 if timed_out else code, timed_out=timed_out, duration_seconds=deadline.elapsed())

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def check_run_id(run_id: str) -> str:
    """Returns ``run_id`` when it is usable as a label value and in names.

    Raises:
        InputError: The run id is empty or has characters labels cannot hold.
    """
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
        raise InputError(
            f"run id {run_id!r} is not valid for a sandbox label",
            hint="use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return run_id


def sandbox_labels(run_id: str, lifetime_seconds: int, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The labels a new sandbox carries: the caller's, then the project's (which win).

    Example:
        >>> labels = sandbox_labels("run-1", 60, {"team": "docs"})
        >>> labels["cloud-runs.run-id"], labels["team"]
        ('run-1', 'docs')
    """
    check_run_id(run_id)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    labels = {str(k): str(v) for k, v in (extra or {}).items()}
    labels.update(
        {
            RUN_ID_LABEL: run_id,
            CREATED_AT_LABEL: now.isoformat(),
            EXPIRES_AT_LABEL: (now + timedelta(seconds=lifetime_seconds)).isoformat(),
        }
    )
    return labels


def labels_match(labels: Mapping[str, str], wanted: Mapping[str, str] | None) -> bool:
    """True when ``labels`` belong to the project and contain every ``wanted`` pair."""
    if RUN_ID_LABEL not in labels:
        return False
    return all(labels.get(k) == v for k, v in (wanted or {}).items())


def is_expired(labels: Mapping[str, str], now: datetime | None = None) -> bool:
    """True when the ``cloud-runs.expires-at`` label lies in the past."""
    value = labels.get(EXPIRES_AT_LABEL)
    if not value:
        return False
    try:
        expires = datetime.fromisoformat(value)
    except ValueError:
        return False
    return (now or datetime.now(timezone.utc)) >= expires


def check_argv(argv: Sequence[str]) -> list[str]:
    """Returns ``argv`` as a list after checking it is a non-empty list of strings.

    A single string is refused: it would be split or run through a shell, which
    the exec contract never does.
    """
    if isinstance(argv, (str, bytes)):
        raise InputError(
            f"exec got the string {argv!r}, not a list of arguments",
            hint='pass a list such as ["git", "status"]; use ["sh", "-c", "..."] when a shell is really needed',
        )
    args = list(argv)
    if not args or not all(isinstance(a, str) for a in args):
        raise InputError(f"exec argv {args!r} must be a non-empty list of strings", hint='e.g. ["echo", "hi"]')
    return args


def check_sandbox_path(path: str) -> str:
    """Returns ``path`` when it is absolute (sandbox paths always are)."""
    if not isinstance(path, str) or not path.startswith("/") or "\x00" in path:
        raise InputError(f"sandbox path {path!r} is not absolute", hint="use an absolute path such as /workspace/file")
    return path


def refuse_in_production(provider: str) -> None:
    """Raises :class:`ProductionRefusal` when the environment says production."""
    from cloud_runs.settings import load_settings

    if load_settings().is_production:
        raise ProductionRefusal(
            f"the {provider} sandbox isolates too little for production (CLOUD_RUNS_ENVIRONMENT=production)",
            hint="use the modal provider (SANDBOX_PROVIDER=modal) in production",
        )


class LineSplitter:
    """Turns chunks of bytes into complete lines, holding partial lines back.

    Decodes UTF-8 incrementally so a multi-byte character split across chunks
    survives; undecodable bytes become U+FFFD.

    Example:
        >>> lines = []
        >>> s = LineSplitter("stdout", lambda stream, line: lines.append(line))
        >>> s.feed(b"a\\nb"); s.feed(b"c\\n"); s.close()
        >>> lines
        ['a', 'bc']
    """

    def __init__(self, stream: str, on_output: OutputCallback | None, lock: threading.Lock | None = None) -> None:
        self.stream = stream
        self._on_output = on_output
        self._lock = lock or threading.Lock()
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""

    def feed(self, chunk: bytes | str) -> None:
        text = chunk if isinstance(chunk, str) else self._decoder.decode(chunk)
        if not text:
            return
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._emit(line)

    def close(self) -> None:
        self._pending += self._decoder.decode(b"", final=True)
        if self._pending:
            self._emit(self._pending)
            self._pending = ""

    def _emit(self, line: str) -> None:
        if self._on_output is None:
            return
        with self._lock:
            self._on_output(self.stream, line.removesuffix("\r"))


class Deadline:
    """Time left of a timeout (``None`` means no limit)."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def remaining(self) -> float | None:
        if self.seconds is None:
            return None
        return max(0.0, self.seconds - self.elapsed())
