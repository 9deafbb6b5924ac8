"""The sandbox contract, run against every provider (local, docker, fake modal, live modal)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from cloud_runs.errors import InputError, ProductionRefusal
from cloud_runs.sandboxes import RUN_ID_LABEL, SandboxError, SandboxStatus
from cloud_runs.sandboxes.base import CREATED_AT_LABEL, EXPIRES_AT_LABEL
from tests.sandboxes.conftest import make_settings

REPO = Path(__file__).resolve().parents[2]


def collect(sandbox, argv, **kwargs):
    lines = []
    result = sandbox.exec(argv, on_output=lambda stream, line: lines.append((stream, line)), **kwargs)
    return result, lines


def test_exec_streams_stdout_and_stderr_and_returns_the_exit_code(sandbox):
    result, lines = collect(sandbox, ["sh", "-c", "echo out; echo err >&2; exit 7"])
    assert result.exit_code == 7 and not result.timed_out and not result.ok
    assert ("stdout", "out") in lines and ("stderr", "err") in lines


def test_exec_passes_argv_without_a_shell(sandbox):
    result, lines = collect(sandbox, ["printf", "%s|", "a b", "$HOME", "*", "; echo injected"])
    assert result.ok
    assert lines == [("stdout", "a b|$HOME|*|; echo injected|")]


def test_exec_refuses_a_shell_string(sandbox):
    with pytest.raises(InputError, match="list of arguments"):
        sandbox.exec("echo hi")


def test_output_arrives_while_the_process_runs(sandbox):
    arrivals = {}
    start = time.monotonic()
    result = sandbox.exec(
        ["sh", "-c", "echo first; sleep 3; echo second"],
        on_output=lambda stream, line: arrivals.setdefault(line, time.monotonic() - start),
    )
    assert result.ok
    assert arrivals["first"] < result.duration_seconds - 2, arrivals
    assert arrivals["second"] >= 2.5


def test_partial_lines_and_multibyte_characters_survive(sandbox):
    result, lines = collect(sandbox, ["sh", "-c", "printf 'pa'; sleep 0.5; printf 'rt\\n\\303'; sleep 0.5; printf '\\251 end'"])
    assert result.ok
    assert [line for _, line in lines] == ["part", "é end"]


def test_cwd_and_env_apply_to_one_process(sandbox):
    sandbox.write_file("/workspace/sub/marker", b"x")
    result, lines = collect(sandbox, ["sh", "-c", 'pwd; echo "v=$CR_TEST_VALUE"'], cwd="/workspace/sub",
                            env={"CR_TEST_VALUE": "42"})
    assert result.ok and [line for _, line in lines] == ["/workspace/sub", "v=42"]
    result, lines = collect(sandbox, ["sh", "-c", 'echo "v=$CR_TEST_VALUE"'])
    assert [line for _, line in lines] == ["v="]


def test_timeout_kills_the_process_and_its_children(sandbox):
    result, _ = collect(sandbox, ["sh", "-c", "sleep 60 & echo $! > /workspace/child.pid; sleep 60"], timeout=2)
    assert result.timed_out and result.exit_code == -1
    assert result.duration_seconds < 15
    # A killed child whose parent died may linger as a zombie until reaped: that is dead.
    probe = 'state=$(cut -d" " -f3 "/proc/$(cat /workspace/child.pid)/stat" 2>/dev/null); [ -n "$state" ] && [ "$state" != Z ] && echo alive || echo dead'
    check, lines = collect(sandbox, ["sh", "-c", probe])
    assert lines == [("stdout", "dead")]


def test_files_round_trip_binary_safe(sandbox):
    blob = bytes(range(256)) * 16384 + os.urandom(1 << 20)  # 5 MiB, every byte value
    sandbox.write_file("/workspace/deep/dir/blob.bin", blob)
    assert sandbox.read_file("/workspace/deep/dir/blob.bin") == blob
    result, lines = collect(sandbox, ["sha256sum", "/workspace/deep/dir/blob.bin"])
    assert lines[0][1].split()[0] == hashlib.sha256(blob).hexdigest()
    sandbox.write_file("/tmp/cloud-runs/run.sh", b"#!/bin/sh\necho ran\n", mode=0o755)
    result, lines = collect(sandbox, ["/tmp/cloud-runs/run.sh"])
    assert result.ok and lines == [("stdout", "ran")]
    sandbox.write_file("/workspace/empty", b"")
    assert sandbox.read_file("/workspace/empty") == b""


def test_reading_a_missing_file_is_a_clear_error(sandbox):
    with pytest.raises(SandboxError, match="/workspace/nope"):
        sandbox.read_file("/workspace/nope")


def test_labels_are_found_by_a_reaper_query(settings, request):
    run_id = f"labels-{uuid.uuid4().hex[:8]}"
    box = settings.create(run_id=run_id, labels={"cloud-runs.purpose": "test"})
    try:
        found = settings.list_sandboxes({RUN_ID_LABEL: run_id})
        assert [ref.id for ref in found] == [box.id]
        labels = found[0].labels
        assert labels["cloud-runs.purpose"] == "test"
        assert labels[CREATED_AT_LABEL] < labels[EXPIRES_AT_LABEL]
        assert box.id in [ref.id for ref in settings.list_sandboxes()]
        settings.destroy_by_id(found[0].id)
        assert settings.list_sandboxes({RUN_ID_LABEL: run_id}) == []
        settings.destroy_by_id(found[0].id)  # idempotent
    finally:
        box.destroy()


def test_destroy_is_idempotent_and_thread_safe(settings):
    box = settings.create(run_id=f"destroy-{uuid.uuid4().hex[:8]}")
    assert box.status() is SandboxStatus.RUNNING
    errors = []

    def destroy():
        try:
            box.destroy()
        except Exception as exc:  # pragma: no cover - the assertion reports it
            errors.append(exc)

    threads = [threading.Thread(target=destroy) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    box.destroy()
    assert errors == []
    assert box.status() is SandboxStatus.DESTROYED
    with pytest.raises(SandboxError):
        box.exec(["true"])


CHILD = """
import json, os, signal, sys, threading, time
sys.path.insert(0, {repo!r})
from pathlib import Path
provider, state_dir, run_id = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
from tests.sandboxes.conftest import install_fake_modal, make_settings
if provider == "fake-modal":
    install_fake_modal(state_dir)
settings = make_settings(provider, state_dir, lifetime_seconds=int(sys.argv[4]))
box = settings.create(run_id=run_id)
threading.Thread(target=box.exec, args=(["sleep", "600"],), daemon=True).start()
time.sleep(1)
print(box.id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # the orchestrator dies without cleaning up
"""


def test_lifetime_ends_the_sandbox_without_the_orchestrator(provider, settings, tmp_path):
    lifetime = 20 if provider == "modal" else 5
    run_id = f"orphan-{uuid.uuid4().hex[:8]}"
    child = subprocess.run(
        [sys.executable, "-c", CHILD.format(repo=str(REPO)), provider, str(tmp_path), run_id, str(lifetime)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert child.returncode == -9, child.stderr
    sandbox_id = child.stdout.strip()
    assert [ref.id for ref in settings.list_sandboxes({RUN_ID_LABEL: run_id})] == [sandbox_id]
    deadline = time.monotonic() + lifetime + 60
    while time.monotonic() < deadline:
        running = [ref for ref in settings.list_sandboxes({RUN_ID_LABEL: run_id}) if ref.status is SandboxStatus.RUNNING]
        if not running:
            break
        time.sleep(1)
    assert not running, f"{sandbox_id} still runs {lifetime} s after its lifetime"
    if provider in ("local", "fake-modal"):
        leftovers = subprocess.run(["pgrep", "-f", "sleep 600"], capture_output=True, text=True).stdout.split()
        for pid in leftovers:
            environ = Path(f"/proc/{pid}/environ").read_bytes() if Path(f"/proc/{pid}/environ").exists() else b""
            assert sandbox_id.removeprefix("sb-").encode() not in environ, "the sandbox's process outlived it"


@pytest.mark.parametrize("provider", ["local", pytest.param("docker", marks=pytest.mark.docker)])
def test_docker_and_local_refuse_production(provider, tmp_path, monkeypatch):
    """Only these two refuse: modal is the production provider."""
    monkeypatch.chdir(tmp_path)  # no stray .env decides the environment
    settings = make_settings(provider, tmp_path)
    before = settings.list_sandboxes()
    monkeypatch.setenv("CLOUD_RUNS_ENVIRONMENT", "production")
    with pytest.raises(ProductionRefusal, match="production") as caught:
        settings.create(run_id="prod-run")
    assert "modal" in caught.value.hint
    assert settings.list_sandboxes() == before
