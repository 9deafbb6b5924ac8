"""`cloud-runs deploy` against a real server, and a run through the process pool."""

from __future__ import annotations

import pytest

from tests.deployments.conftest import BLOCK, SANDBOX_BLOCK, SCRIPTED_FIX, flow_run_id_from, run_params, wait_for_final

pytestmark = pytest.mark.prefect_server


def test_deploy_creates_the_pools_and_every_deployment(prefect_server, deployed):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        pools = {pool.name: pool for pool in client.read_work_pools()}
        deployments = {f"{client.read_flow(d.flow_id).name}/{d.name}": d for d in client.read_deployments()}
    assert {name: pools[name].type for name in ("docker", "modal", "local")} == {
        "docker": "docker", "modal": "modal", "local": "process"}
    assert pools["local"].concurrency_limit == 8
    assert set(deployments) == {"cloud-run/docker", "cloud-run/modal", "cloud-run/local",
                                "issue-watch/local", "sandbox-reaper/local"}
    docker = deployments["cloud-run/docker"]
    assert docker.work_pool_name == "docker"
    assert docker.job_variables["image_pull_policy"] == "Never"
    assert docker.global_concurrency_limit is not None and docker.global_concurrency_limit.limit == 4
    assert docker.parameters["sandbox"] == "docker/default"
    assert [s.schedule.interval.total_seconds() for s in deployments["issue-watch/local"].schedules] == [300]
    assert [s.schedule.cron for s in deployments["sandbox-reaper/local"].schedules] == ["*/15 * * * *"]
    # Pull steps: the checkout for process pools, the image's copy for Docker.
    assert deployments["cloud-run/local"].pull_steps[0]["prefect.deployments.steps.set_working_directory"][
        "directory"] == str(prefect_server.env["CLOUD_RUNS_PROJECT_DIR"])
    assert docker.pull_steps[0]["prefect.deployments.steps.set_working_directory"]["directory"] == "/opt/cloud-runs"


def test_deploy_is_idempotent(prefect_server, deployed):
    import subprocess
    import sys

    from tests.deployments.conftest import PROJECT_DIR

    again = subprocess.run([sys.executable, "-m", "cloud_runs.deploy", "--skip-pool", "modal"], env=prefect_server.env,
                           cwd=PROJECT_DIR, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, f"{again.stdout}\n{again.stderr}"
    assert "work pool docker (docker) exists" in again.stdout and "modal" not in again.stdout


def test_deployment_run_through_the_process_worker_opens_a_pull_request(prefect_server, world, local_worker):
    repository, issue = world.new_repository()
    started = prefect_server.cli("deployment", "run", "cloud-run/local", *run_params(
        repository=repository, issue=issue, agent=SCRIPTED_FIX, sandbox=f"local/{SANDBOX_BLOCK}",
        github_app=BLOCK, agent_credentials=BLOCK))
    flow_run = wait_for_final(flow_run_id_from(started.stdout), timeout=240, worker=local_worker)
    assert flow_run.state.is_completed(), f"{flow_run.state}\n{local_worker.tail()}"
    pulls = world.forge.pulls(repository)
    assert len(pulls) == 1 and pulls[0]["state"] == "open"
    assert pulls[0]["labels"] == ["cloud-runs"]  # the deployment's default parameter
    assert not list(world.sandbox_dir.iterdir()), "the local sandbox was not torn down"
