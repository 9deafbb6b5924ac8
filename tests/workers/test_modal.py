"""The `modal` worker against a real `prefect server start`, with the fake Modal SDK.

The fake (tests/fakes/fake_modal.py) binds every call to the installed `modal`
package's real signatures and runs sandbox commands as local processes, so the
flow run really executes (`prefect flow-run execute <id>`) against the real
server, and its state, output and exit code are Prefect's own.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from pathlib import Path

import anyio
import httpx
import pytest
import yaml

from cloud_runs.errors import ConfigurationError
from cloud_runs.workers.modal import (
    FLOW_RUN_ID_TAG,
    SANDBOX_GRACE_SECONDS,
    ModalWorker,
    ModalWorkerJobConfiguration,
    split_environment,
)
from tests.workers.conftest import VENV_BIN, prefect_cli

pytestmark = pytest.mark.prefect_server

REPO = Path(__file__).resolve().parents[2]
POOL = "modal-fake"
FAKE_API_KEY = "pnu_fakeapikey0123456789abcdefghijklmnop"
SERVICE_TOKEN = "svc-token-0123456789"
IMAGE = "registry.example.org/flows:1"

FLOWS = '''
import time
from prefect import flow


@flow(log_prints=True)
def hello():
    print("hello from the modal sandbox")
    return 42


@flow(log_prints=True)
def sleeper():
    print("sleeper started", flush=True)
    time.sleep(120)
'''


def _api(api_url: str, method: str, path: str, **kwargs) -> httpx.Response:
    response = httpx.request(method, f"{api_url}{path}", timeout=30, **kwargs)
    response.raise_for_status()
    return response


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def _flow_run(api_url: str, flow_run_id: str) -> dict:
    return _api(api_url, "GET", f"/flow_runs/{flow_run_id}").json()


def _wait_final(api_url: str, flow_run_id: str, timeout: float = 150) -> dict:
    return _wait_for(
        lambda: (run := _flow_run(api_url, flow_run_id))["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
        and run,
        timeout,
        f"flow run {flow_run_id} to end",
    )


# -- server-side: pool type and template -------------------------------------


@pytest.fixture(scope="module")
def modal_pool(prefect_server, cli_home):
    result = prefect_cli("work-pool", "create", POOL, "--type", "modal", api_url=prefect_server, home=cli_home)
    assert result.returncode == 0, result.stdout + result.stderr
    return POOL


def test_work_pool_create_stores_the_default_template(prefect_server, modal_pool):
    pool = _api(prefect_server, "POST", "/work_pools/filter", json={}).json()
    stored = next(p for p in pool if p["name"] == modal_pool)
    assert stored["type"] == "modal"
    assert stored["base_job_template"] == json.loads(json.dumps(ModalWorker.get_default_base_job_template()))
    variables = stored["base_job_template"]["variables"]["properties"]
    for field in ("image", "cpu", "memory", "timeout", "env", "modal_credentials", "app_name",
                  "block_network", "outbound_cidr_allowlist", "region"):
        assert field in variables, field
    for name, schema in variables.items():  # every variable renders as a labelled, explained form field
        assert schema.get("title") and schema.get("description"), name
    assert variables["memory"]["default"] == 2048 and variables["cpu"]["default"] == 1.0
    credentials = variables["modal_credentials"]["anyOf"][0]["$ref"]
    definition = stored["base_job_template"]["variables"]["definitions"][credentials.rsplit("/", 1)[1]]
    assert definition["block_type_slug"] == "modal-credentials"
    assert stored["base_job_template"]["job_configuration"]["modal_credentials"] == "{{ modal_credentials }}"


def test_unknown_push_type_is_still_rejected_by_a_self_hosted_server(prefect_server, cli_home):
    # Why the worker exists: a self-hosted server refuses Cloud's push type.
    result = prefect_cli("work-pool", "create", "push-attempt", "--type", "modal:push", api_url=prefect_server, home=cli_home)
    assert result.returncode != 0


# -- deployments --------------------------------------------------------------


@pytest.fixture(scope="module")
def credentials_block_id(prefect_server):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from blocks.modal_credentials import ModalCredentials

    with temporary_settings(updates={PREFECT_API_URL: prefect_server}):
        return str(ModalCredentials(token_id="ak-workertest", token_secret="as-workertest").save("worker-tests", overwrite=True))


def _deployment(name: str, entrypoint: str, block_id: str, **job_variables) -> dict:
    variables = {
        "image": IMAGE, "cpu": 0.5, "memory": 512, "timeout": 300, "app_name": "worker-tests",
        "workdir": "/workspace",  # the fake maps only /workspace, /tmp/cloud-runs and /home/agent
        "modal_credentials": {"$ref": {"block_document_id": block_id}},
        "env": {"GREETING_MODE": "plain", "SERVICE_TOKEN": SERVICE_TOKEN},
        **job_variables,
    }
    return {"name": name, "entrypoint": entrypoint, "work_pool": {"name": POOL, "job_variables": variables}}


@pytest.fixture(scope="module")
def project(tmp_path_factory, prefect_server, cli_home, modal_pool, credentials_block_id) -> Path:
    """A small project deployed onto the modal pool with `prefect --no-prompt deploy --all`."""
    directory = tmp_path_factory.mktemp("modal-project")
    (directory / "flows.py").write_text(FLOWS)
    config = {
        "name": "worker-tests",
        "prefect-version": "3.9.1",
        "pull": [{"prefect.deployments.steps.set_working_directory": {"directory": str(directory)}}],
        "deployments": [
            _deployment("hello", "flows.py:hello", credentials_block_id),
            _deployment("sleeper", "flows.py:sleeper", credentials_block_id),
            _deployment("exit-seven", "flows.py:hello", credentials_block_id,
                        command="sh -c 'echo failing on purpose; exit 7'"),
            _deployment("never-starts", "flows.py:hello", credentials_block_id, command="sleep 120"),
        ],
    }
    (directory / "prefect.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = prefect_cli("--no-prompt", "deploy", "--all", api_url=prefect_server, home=cli_home, cwd=directory)
    assert result.returncode == 0, result.stdout + result.stderr
    return directory


def test_deploy_all_onto_the_modal_pool(prefect_server, project):
    deployments = _api(prefect_server, "POST", "/deployments/filter", json={}).json()
    on_pool = {d["name"]: d for d in deployments if d["work_pool_name"] == POOL}
    assert {"hello", "sleeper", "exit-seven", "never-starts"} <= set(on_pool)
    assert on_pool["hello"]["job_variables"]["image"] == IMAGE


# -- the worker, driven through the fake Modal SDK ----------------------------


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def worker(prefect_server, project, tmp_path_factory):
    """A ModalWorker polling the pool in a background thread, with `modal` replaced by the fake."""
    from prefect.settings import (
        PREFECT_API_KEY,
        PREFECT_API_URL,
        PREFECT_WORKER_CANCELLATION_POLL_SECONDS,
        PREFECT_WORKER_ENABLE_CANCELLATION,
        PREFECT_WORKER_PREFETCH_SECONDS,
        PREFECT_WORKER_QUERY_SECONDS,
        temporary_settings,
    )

    from tests.fakes import fake_modal

    fake_modal.configure(tmp_path_factory.mktemp("fake-modal-state"))
    records = _Records()
    watched = logging.getLogger("prefect")
    watched.addHandler(records)
    stop = threading.Event()
    errors: list[BaseException] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "modal", fake_modal)
        # The fake runs the command as a local process: `prefect` must be on its PATH.
        patch.setenv("PATH", f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', os.defpath)}")
        patch.delenv("MODAL_TOKEN_ID", raising=False)
        patch.delenv("MODAL_TOKEN_SECRET", raising=False)

        def serve() -> None:
            updates = {
                PREFECT_API_URL: prefect_server, PREFECT_API_KEY: FAKE_API_KEY,
                PREFECT_WORKER_QUERY_SECONDS: 1, PREFECT_WORKER_PREFETCH_SECONDS: 1,
                PREFECT_WORKER_ENABLE_CANCELLATION: True, PREFECT_WORKER_CANCELLATION_POLL_SECONDS: 1,
            }
            with temporary_settings(updates=updates):
                async def main() -> None:
                    async with anyio.create_task_group() as group:
                        modal_worker = ModalWorker(work_pool_name=POOL, name="test-modal-worker")
                        modal_worker.cancellation_poll_seconds = 1
                        modal_worker.cancellation_grace_seconds = 10  # the runner in the sandbox acts first
                        group.start_soon(modal_worker.start)
                        await anyio.to_thread.run_sync(stop.wait)
                        group.cancel_scope.cancel()

                try:
                    anyio.run(main)
                except BaseException as exc:  # reported by the tests that need the worker
                    errors.append(exc)

        thread = threading.Thread(target=serve, name="modal-worker", daemon=True)
        thread.start()
        try:
            yield {"fake": fake_modal, "records": records, "errors": errors, "thread": thread}
        finally:
            stop.set()
            thread.join(60)
            watched.removeHandler(records)


def _run_deployment(api_url: str, name: str) -> str:
    flow_name = "sleeper" if name == "sleeper" else "hello"
    deployment = _api(api_url, "GET", f"/deployments/name/{flow_name}/{name}").json()
    return _api(api_url, "POST", f"/deployments/{deployment['id']}/create_flow_run", json={}).json()["id"]


def _create_call(fake, flow_run_id: str) -> dict:
    matches = [a for name, a in fake.calls if name == "Sandbox.create" and a.get("tags", {}).get(FLOW_RUN_ID_TAG) == flow_run_id]
    assert len(matches) == 1, f"expected one sandbox for flow run {flow_run_id}, got {len(matches)}"
    return matches[0]


def _exec_call(fake, flow_run_id: str) -> dict:
    matches = [a for name, a in fake.calls if name == "Sandbox.exec" and flow_run_id in a.get("args", ())]
    assert matches, f"no exec carried flow run {flow_run_id}"
    return matches[-1]


def _sandboxes_of(fake, flow_run_id: str) -> list:
    app = fake.App.lookup("worker-tests", client=fake.Client.from_credentials("ak-x", "as-x"), create_if_missing=True)
    return list(fake.Sandbox.list(app_id=app.app_id, tags={FLOW_RUN_ID_TAG: flow_run_id}))


def test_flow_run_executes_in_a_sandbox_and_completes(prefect_server, worker):
    fake = worker["fake"]
    flow_run_id = _run_deployment(prefect_server, "hello")
    run = _wait_final(prefect_server, flow_run_id)
    assert run["state"]["type"] == "COMPLETED", run["state"]

    create = _create_call(fake, flow_run_id)
    assert create["image"].source == IMAGE
    assert create["cpu"] == 0.5 and create["memory"] == 512
    assert create["timeout"] == 300 + SANDBOX_GRACE_SECONDS
    assert create["tags"][FLOW_RUN_ID_TAG] == flow_run_id and create["tags"]["cloud-runs.run-id"] == flow_run_id
    assert create["client"].token_id == "ak-workertest"  # from the modal-credentials block
    plain = create["env"]
    assert plain["PREFECT__FLOW_RUN_ID"] == flow_run_id
    assert plain["PREFECT_API_URL"] == prefect_server
    assert plain["GREETING_MODE"] == "plain"
    # No secret in plain text: not in the sandbox's env, nor anywhere in the create call.
    assert "PREFECT_API_KEY" not in plain and "SERVICE_TOKEN" not in plain
    assert FAKE_API_KEY not in repr(create) and SERVICE_TOKEN not in repr(create)

    execution = _exec_call(fake, flow_run_id)
    assert list(execution["args"][-4:]) == ["prefect", "flow-run", "execute", flow_run_id]
    assert FAKE_API_KEY not in repr(execution["args"])
    [secret] = execution["secrets"]
    assert secret.values["PREFECT_API_KEY"] == FAKE_API_KEY and secret.values["SERVICE_TOKEN"] == SERVICE_TOKEN

    lines = worker["records"].lines
    assert any("hello from the modal sandbox" in line for line in lines), lines[-30:]
    assert not any(FAKE_API_KEY in line or SERVICE_TOKEN in line for line in lines)
    # The state is final a moment before the command exits; then the sandbox is terminated.
    _wait_for(lambda: _sandboxes_of(fake, flow_run_id) == [], 30, "the sandbox to be terminated")
    assert any(name == "Sandbox.terminate" for name, _ in fake.calls)


def test_non_zero_exit_marks_the_flow_run_crashed(prefect_server, worker):
    flow_run_id = _run_deployment(prefect_server, "exit-seven")
    run = _wait_final(prefect_server, flow_run_id)
    assert run["state"]["type"] == "CRASHED", run["state"]
    assert "7" in run["state"]["message"]
    assert any("failing on purpose" in line for line in worker["records"].lines)
    assert _sandboxes_of(worker["fake"], flow_run_id) == []


def test_cancelling_a_running_flow_run_terminates_its_sandbox(prefect_server, worker):
    fake = worker["fake"]
    flow_run_id = _run_deployment(prefect_server, "sleeper")
    _wait_for(lambda: _flow_run(prefect_server, flow_run_id)["state"]["type"] == "RUNNING", 120, "the flow run to run")
    assert len(_sandboxes_of(fake, flow_run_id)) == 1
    _api(prefect_server, "POST", f"/flow_runs/{flow_run_id}/set_state",
         json={"state": {"type": "CANCELLING", "name": "Cancelling"}, "force": True})
    run = _wait_final(prefect_server, flow_run_id, timeout=90)
    assert run["state"]["type"] == "CANCELLED", run["state"]
    _wait_for(lambda: _sandboxes_of(fake, flow_run_id) == [], 30, "the sandbox to be terminated")


def test_cancelling_a_flow_run_whose_command_ignores_it_terminates_the_sandbox(prefect_server, worker):
    fake = worker["fake"]
    flow_run_id = _run_deployment(prefect_server, "never-starts")  # its command never starts the flow
    _wait_for(lambda: _flow_run(prefect_server, flow_run_id)["infrastructure_pid"], 60, "the sandbox to start")
    sandbox_id = _flow_run(prefect_server, flow_run_id)["infrastructure_pid"]
    assert [s.object_id for s in _sandboxes_of(fake, flow_run_id)] == [sandbox_id]
    _api(prefect_server, "POST", f"/flow_runs/{flow_run_id}/set_state",
         json={"state": {"type": "CANCELLING", "name": "Cancelling"}, "force": True})
    run = _wait_final(prefect_server, flow_run_id, timeout=60)
    assert run["state"]["type"] == "CANCELLED", run["state"]
    assert _sandboxes_of(fake, flow_run_id) == []
    assert "terminated its Modal sandbox" in run["state"]["message"]


# -- configuration, before any side effect ------------------------------------


def test_secret_looking_names_go_to_the_secret():
    plain, secret = split_environment(
        {"PREFECT_API_URL": "u", "PREFECT_API_KEY": "k", "GITHUB_TOKEN": "t", "DB_PASSWORD": "p", "MODE": "x", "NONE": None}
    )
    assert plain == {"PREFECT_API_URL": "u", "MODE": "x"}
    assert secret == {"PREFECT_API_KEY": "k", "GITHUB_TOKEN": "t", "DB_PASSWORD": "p"}


def test_block_network_is_refused_with_a_fix():
    config = ModalWorkerJobConfiguration(block_network=True, env={"PREFECT_API_URL": "https://prefect.example.org/api"})
    with pytest.raises(ConfigurationError) as raised:
        config.check()
    assert "block_network" in raised.value.message and "outbound_cidr_allowlist" in raised.value.hint


def test_missing_dockerfile_is_refused(tmp_path):
    config = ModalWorkerJobConfiguration(dockerfile=str(tmp_path / "nope"), env={"PREFECT_API_URL": "https://p/api"})
    with pytest.raises(ConfigurationError, match="not a file"):
        config.check()


def test_worker_import_does_not_import_modal():
    import subprocess

    code = "import sys, cloud_runs.collection; print('modal' in sys.modules, 'docker' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.stdout.strip() == "False False", out.stderr


# -- live ---------------------------------------------------------------------

MODAL_LIVE = bool(os.environ.get("MODAL_TOKEN_ID") and os.environ.get("MODAL_TOKEN_SECRET"))


@pytest.mark.modal_live
@pytest.mark.skipif(not MODAL_LIVE, reason="MODAL_TOKEN_ID/MODAL_TOKEN_SECRET are not set")
def test_live_modal_runs_a_flow_run_command(prefect_server, project, cli_home):
    """On real Modal: one sandbox per flow run, output streamed, exit code reported, sandbox gone.

    The command does not call back into the Prefect API (a local test server is
    not reachable from Modal), so it proves the Modal side end to end.
    """
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    records = _Records()
    logging.getLogger("prefect").addHandler(records)

    async def main():
        async with ModalWorker(work_pool_name=POOL, name="live-modal-worker") as modal_worker:
            async with get_client() as client:
                deployment = await client.read_deployment_by_name("hello/exit-seven")
                flow_run = await client.create_flow_run_from_deployment(
                    deployment.id,
                    job_variables={"command": "python -c \"print('hello from real modal')\"", "modal_credentials": None,
                                   "image": "prefecthq/prefect:3-python3.11", "workdir": "/opt/prefect", "timeout": 600},
                )
                config = await ModalWorkerJobConfiguration.resolve_for_flow_run(
                    flow_run, client=client, work_pool=await client.read_work_pool(POOL), worker_name=modal_worker.name
                )
                return await modal_worker.run(flow_run, config)

    try:
        with temporary_settings(updates={PREFECT_API_URL: prefect_server}):
            result = anyio.run(main)
    finally:
        logging.getLogger("prefect").removeHandler(records)
    assert result.status_code == 0 and result.identifier.startswith("sb-")
    assert any("hello from real modal" in line for line in records.lines)
