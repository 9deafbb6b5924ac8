"""A real Docker worker runs cloud-run/docker in the flow-run image, with a Docker sandbox beside it."""

from __future__ import annotations

import subprocess

import pytest

from tests.deployments.conftest import (
    BLOCK, PROJECT_DIR, SANDBOX_BLOCK, SCRIPTED_FIX, Worker, flow_run_id_from, run_params, wait_for_final,
)

pytestmark = [pytest.mark.prefect_server, pytest.mark.docker]

SANDBOX_IMAGE = "cloud-runs-sandbox:latest"


def _containers(label: str) -> list[str]:
    result = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={label}"], capture_output=True, text=True,
                            timeout=30, check=True)
    return result.stdout.split()


@pytest.fixture(scope="module")
def flow_run_image() -> str:
    if subprocess.run(["docker", "image", "inspect", SANDBOX_IMAGE], capture_output=True, timeout=30).returncode:
        pytest.fail(f"{SANDBOX_IMAGE} is missing: build it with scripts/build-images")
    built = subprocess.run([str(PROJECT_DIR / "scripts" / "build-flow-run-image")], capture_output=True, text=True,
                           timeout=1800)
    assert built.returncode == 0, f"{built.stdout}\n{built.stderr}"
    return "cloud-runs-flow-run:latest"


def test_docker_worker_runs_the_flow_in_the_flow_run_image(prefect_server, world, deployed, flow_run_image,
                                                           tmp_path):
    worker = Worker(prefect_server, tmp_path / "docker-worker.log", "--pool", "docker", "--type", "docker")
    try:
        repository, issue = world.new_repository("docker")
        started = prefect_server.cli(
            "deployment", "run", "cloud-run/docker",
            *run_params(repository=repository, issue=issue, agent=SCRIPTED_FIX, sandbox=f"docker/{SANDBOX_BLOCK}",
                        github_app=BLOCK, agent_credentials=BLOCK),
            # Host networking: the flow run reaches the server and the forge on 127.0.0.1.
            "--job-variable", "network_mode=host")
        flow_run_id = flow_run_id_from(started.stdout)
        flow_run = wait_for_final(flow_run_id, timeout=300, worker=worker)
        assert flow_run.state.is_completed(), f"{flow_run.state}\n{worker.tail()}"
    finally:
        worker.stop()
    pulls = world.forge.pulls(repository)
    assert len(pulls) == 1 and pulls[0]["state"] == "open"
    # The run went through the Docker worker: its infrastructure is a container.
    assert flow_run.work_pool_name == "docker" and flow_run.infrastructure_pid
    assert _containers(f"io.prefect.flow-run-id={flow_run_id}") == [], "the flow-run container was left behind"
    assert _containers(f"cloud-runs.run-id={flow_run_id}") == [], "the sandbox container was left behind"
