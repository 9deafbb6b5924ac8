"""Watchdog of one local sandbox, run as a detached process.

``python _local_watchdog.py SANDBOX_DIR MARKER EXPIRES_AT_EPOCH``

It outlives the orchestrator (own session, no pipes to it). When the sandbox's
lifetime ends it kills every process carrying the sandbox's environment marker
(and the process groups recorded in ``SANDBOX_DIR/pgids``) and removes the
directory. When the directory disappears first (the sandbox was destroyed), it
just exits. Standalone on purpose: it imports nothing from the project, so it
works whatever the orchestrator's working directory or ``sys.path`` was.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time

POLL_SECONDS = 0.5


def processes_with_marker(marker: str) -> list[int]:
    """PIDs whose initial environment holds ``marker`` (``NAME=value``); Linux only."""
    found = []
    needle = marker.encode()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:
            continue
    return found


def kill_sandbox_processes(sandbox_dir: str, marker: str) -> None:
    """Kills the sandbox's processes: by marker on Linux, else by recorded process group."""
    if os.path.isdir("/proc/self"):
        # Repeat: a dying process tree can fork while we scan.
        for _ in range(3):
            pids = processes_with_marker(marker)
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.05)
        return
    try:
        with open(os.path.join(sandbox_dir, "pgids")) as f:
            pgids = {int(line) for line in f if line.strip().isdigit()}
    except OSError:
        pgids = set()
    for pgid in pgids:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass


def main(argv: list[str]) -> int:
    sandbox_dir, marker, expires_at = argv[0], argv[1], float(argv[2])
    while os.path.isdir(sandbox_dir):
        if time.time() >= expires_at:
            kill_sandbox_processes(sandbox_dir, marker)
            shutil.rmtree(sandbox_dir, ignore_errors=True)
            return 0
        time.sleep(POLL_SECONDS)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
