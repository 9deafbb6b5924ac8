"""One real `prefect server start`, one forge, the deployments and a process worker, for this package.

Package-scoped: the server and its settings go away after these tests, so the
rest of the session keeps talking to its own API.

The server runs in a temporary PREFECT_HOME on a free port; the test process
and every subprocess (deploy, workers, flow runs) talk to it through
PREFECT_API_URL. The forge runs in the test process on 127.0.0.1 and stands
in for GitHub; flow runs in the worker's subprocesses (and the Docker
flow-run container, on host networking) reach it there.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cloud_runs.demo import FIX_STEPS, ISSUE_BODY, ISSUE_TITLE, STATS_PY, TEST_STATS_PY, save_demo_blocks, seed_forge

PROJECT_DIR = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))
SERVER_START_SECONDS = 120
BLOCK = "demo"  # GitHub App + Agent Credentials (cloud_runs.demo)
SANDBOX_BLOCK = "deploy-tests"
SCRIPTED_FIX = {"type": "scripted", "steps": FIX_STEPS}
_repo_names = itertools.count(1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def stop_process_group(process: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM the process group, then SIGKILL it if it lingers."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)


@dataclass
class PrefectServer:
    url: str
    env: dict[str, str]
    log: Path

    def cli(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([PREFECT, *args], env=self.env, cwd=PROJECT_DIR, capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"prefect {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result


@pytest.fixture(scope="package")
def prefect_server(tmp_path_factory) -> PrefectServer:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    home = tmp_path_factory.mktemp("prefect-server")
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    base = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    base.update({"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    log = home / "server.log"
    server_env = {**base, "PREFECT_HOME": str(home / "server-home")}
    with open(log, "wb") as output:
        server = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"],
                                  env=server_env, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while not _healthy(url):
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"prefect server did not become healthy:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        client_env = {
            **base,
            "PREFECT_API_URL": url,
            "PREFECT_HOME": str(home / "client-home"),
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_WORKER_PREFETCH_SECONDS": "5",
            "CLOUD_RUNS_PROJECT_DIR": str(PROJECT_DIR),
        }
        saved = {k: os.environ.get(k) for k in ("PREFECT_API_URL", "PREFECT_HOME")}
        os.environ.update({"PREFECT_API_URL": url, "PREFECT_HOME": client_env["PREFECT_HOME"]})
        with temporary_settings(updates={PREFECT_API_URL: url}):
            yield PrefectServer(url=url, env=client_env, log=log)
            # Flows run in this process leave logs and events in flight; send them before the server goes.
            from prefect.events.worker import EventsWorker
            from prefect.logging.handlers import APILogWorker

            APILogWorker.drain_all(timeout=10)
            EventsWorker.drain_all(timeout=10)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    finally:
        stop_process_group(server, timeout=30)


@dataclass
class World:
    """The forge with the demo App installed on the acme organisation, and the blocks saved."""

    forge: object
    app: object
    sandbox_dir: Path
    repositories: list[str] = field(default_factory=list)

    def new_repository(self, stem: str = "stats") -> tuple[str, int]:
        """A fresh copy of the demo repository with its issue (by maria, who can write)."""
        name = f"acme/{stem}-{next(_repo_names)}"
        self.forge.create_repo(name, files={"stats.py": STATS_PY, "test_stats.py": TEST_STATS_PY}, default_branch="main",
                               private=True)
        self.forge.add_collaborator(name, "maria", permission="write")
        issue = self.forge.create_issue(name, ISSUE_TITLE, ISSUE_BODY, user="maria", labels=["bug"])
        return name, issue


@pytest.fixture(scope="package")
def world(prefect_server, tmp_path_factory) -> World:
    from blocks import DockerSandboxBlock, LocalSandboxBlock
    from cloud_runs.forge import Forge

    forge = Forge(tmp_path_factory.mktemp("forge")).start()
    try:
        app, _issue = seed_forge(forge)
        save_demo_blocks(app, forge.api_url, "local")
        sandbox_dir = tmp_path_factory.mktemp("local-sandboxes")
        # Its own directory, so the reaper in these tests sees only these tests' local sandboxes.
        LocalSandboxBlock(base_dir=str(sandbox_dir), lifetime_seconds=3600).save(SANDBOX_BLOCK, overwrite=True)
        # Host networking: the sandbox reaches the forge on 127.0.0.1.
        DockerSandboxBlock(network_mode="host", lifetime_seconds=3600).save(SANDBOX_BLOCK, overwrite=True)
        yield World(forge=forge, app=app, sandbox_dir=sandbox_dir)
    finally:
        forge.stop()


@pytest.fixture(scope="package")
def deployed(prefect_server) -> str:
    """`cloud_runs.deploy` against this package's server; returns its output."""
    result = subprocess.run([sys.executable, "-m", "cloud_runs.deploy", "--pool-limit", "local=8"],
                            env=prefect_server.env, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"deploy failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


class Worker:
    """A `prefect worker start` subprocess in its own process group."""

    def __init__(self, server: PrefectServer, log: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.log = log
        with open(log, "wb") as output:
            self.process = subprocess.Popen([PREFECT, "worker", "start", *args], env={**server.env, **(env or {})},
                                            cwd=PROJECT_DIR, stdout=output, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)

    def stop(self) -> None:
        stop_process_group(self.process)

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


@pytest.fixture(scope="package")
def local_worker(prefect_server, deployed, tmp_path_factory):
    # Only the default queue: the reaper test runs its flow run on a queue of its
    # own, served by a worker it kills.
    worker = Worker(prefect_server, tmp_path_factory.mktemp("worker") / "local-worker.log", "--pool", "local",
                    "--work-queue", "default")
    yield worker
    worker.stop()


def flow_run_id_from(output: str) -> uuid.UUID:
    match = re.search(r"UUID:\s*([0-9a-f-]{36})", output)
    assert match, f"no flow run id in:\n{output}"
    return uuid.UUID(match.group(1))


def wait_for_final(flow_run_id: uuid.UUID, timeout: float = 300, worker: Worker | None = None):
    """Polls the flow run until it reaches a final state; returns the flow run."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            flow_run = client.read_flow_run(flow_run_id)
            if flow_run.state and flow_run.state.is_final():
                return flow_run
            if time.monotonic() > deadline:
                logs = worker.tail() if worker else ""
                raise AssertionError(f"flow run {flow_run_id} still {flow_run.state.type if flow_run.state else None} "
                                     f"after {timeout} s\n{logs}")
            time.sleep(1)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def run_params(**params: object) -> list[str]:
    """`--param key=value` arguments (JSON values, as the CLI parses them)."""
    args = []
    for key, value in params.items():
        args += ["--param", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
    return args
