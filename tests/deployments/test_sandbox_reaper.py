"""A worker killed mid-run leaves its sandbox behind; sandbox_reaper finds it by label and removes it."""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from cloud_runs.sandboxes.base import RUN_ID_LABEL
from flows.sandbox_reaper import HEARTBEAT_EVENT, sandbox_reaper
from tests.deployments.conftest import BLOCK, SANDBOX_BLOCK, Worker, wait_for

pytestmark = pytest.mark.prefect_server

QUEUE = "reaper-test"
HANG = {"type": "scripted", "steps": [{"action": "hang", "seconds": 900}]}


def _processes_with_env(entry: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if entry.encode() in (proc / "environ").read_bytes().split(b"\0"):
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def _sandbox_of(sandbox_dir: Path, run_id: str) -> Path | None:
    for labels in sandbox_dir.glob("*/labels.json"):
        if json.loads(labels.read_text()).get(RUN_ID_LABEL) == run_id:
            return labels.parent
    return None


def _last_heartbeat(flow_run_id) -> datetime | None:  # noqa: ANN001
    from prefect.client.orchestration import get_client

    from flows.sandbox_reaper import _last_heartbeat as last

    with get_client(sync_client=True) as client:
        return last(client, flow_run_id)


def test_reaper_removes_the_sandbox_a_killed_worker_left(prefect_server, world, deployed, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    prefect_server.cli("work-queue", "create", QUEUE, "--pool", "local")
    worker = Worker(prefect_server, tmp_path / "doomed-worker.log", "--pool", "local", "--work-queue", QUEUE)
    try:
        repository, issue = world.new_repository("reaper")
        flow_run = run_deployment("cloud-run/local", work_queue_name=QUEUE, timeout=0, parameters=dict(
            repository=repository, issue=issue, agent=HANG, sandbox=f"local/{SANDBOX_BLOCK}", github_app=BLOCK,
            agent_credentials=BLOCK))
        run_id = str(flow_run.id)
        sandbox = wait_for(lambda: _sandbox_of(world.sandbox_dir, run_id), timeout=120,
                           what=f"the sandbox of {run_id}\n{worker.tail()}")
        marker = f"CLOUD_RUNS_LOCAL_SANDBOX={sandbox.name}"
        wait_for(lambda: _processes_with_env(marker), timeout=60, what="the hanging agent")
        wait_for(lambda: _last_heartbeat(flow_run.id), timeout=30, what="the flow run's first heartbeat")

        # While the run is alive and heard from, the reaper leaves its sandbox alone.
        alive = sandbox_reaper(providers=[f"local/{SANDBOX_BLOCK}"])
        assert alive.destroyed == [] and alive.kept == 1 and sandbox.exists()

        # SIGKILL the worker and the flow-run process: no finally, no hook runs.
        flow_processes = _processes_with_env(f"PREFECT__FLOW_RUN_ID={run_id}")
        assert flow_processes, "the flow-run process was not found"
        os.killpg(worker.process.pid, signal.SIGKILL)
        for pid in flow_processes:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        worker.process.wait(timeout=10)
    finally:
        worker.stop()

    time.sleep(3)
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(flow_run.id).state.is_running()  # the server still believes it runs
    assert sandbox.exists() and _processes_with_env(marker), "the sandbox should be left behind"

    # The run's heartbeats have stopped; a short timeout lets the test see it
    # without waiting out PREFECT_FLOWS_HEARTBEAT_FREQUENCY.
    silence = 5
    wait_for(lambda: (datetime.now(timezone.utc) - _last_heartbeat(flow_run.id)).total_seconds() > silence + 1,
             timeout=60, what="the heartbeat to grow old")
    report = sandbox_reaper(providers=[f"local/{SANDBOX_BLOCK}"], heartbeat_timeout_seconds=silence)
    [reaped] = report.destroyed
    assert (reaped.id, reaped.run_id) == (sandbox.name, run_id)
    assert "heartbeats" in reaped.reason
    assert not sandbox.exists()
    wait_for(lambda: not _processes_with_env(marker), timeout=10, what="the agent process to be killed")

    # Orphans: a sandbox whose run this server never knew is reaped too.
    from blocks import LocalSandboxBlock

    orphan = LocalSandboxBlock.load(SANDBOX_BLOCK).create(run_id="00000000-0000-4000-8000-000000000000")
    try:
        report = sandbox_reaper(providers=[f"local/{SANDBOX_BLOCK}"])
        assert [(item.id, "orphan" in item.reason) for item in report.destroyed] == [(orphan.id, True)]
    finally:
        orphan.destroy()
