"""A Prefect worker that runs each flow run in a Modal sandbox (work pool type ``modal``).

Prefect Cloud offers ``modal:push`` work pools; a self-hosted Prefect server
does not (push pools are a Cloud feature). This worker fills the gap: it polls
a ``modal`` work pool like any worker and, for every flow run, starts one
Modal sandbox that runs ``prefect flow-run execute <id>``.

How one flow run goes:

1. The job configuration is rendered from the pool's base job template and
   the deployment's job variables (image, cpu, memory, timeout, env, Modal
   credentials block, app, egress policy, region).
2. A sandbox is created in the Modal app ``app_name`` through the project's
   Modal provider (:class:`~cloud_runs.sandboxes.modal.ModalSandboxSettings`),
   tagged with ``prefect.flow-run-id`` and the ``cloud-runs.*`` labels, and
   ending itself shortly after ``timeout`` whatever happens to the worker.
3. The flow-run command runs in it. Environment variables whose names look
   secret (``PREFECT_API_KEY``, ``*_TOKEN``, ``*PASSWORD*``...) travel as an
   ephemeral ``modal.Secret``; the rest (flow run id, API URL...) is plain
   sandbox environment. Output is streamed line by line into the worker's log.
4. The exit code is reported; a non-zero code makes Prefect mark the flow run
   Crashed. The sandbox is terminated when the command ends.

Cancellation: a running flow run is cancelled by Prefect's runner inside the
sandbox (``prefect flow-run execute`` watches for it), after which the command
ends and the worker terminates the sandbox. A flow run cancelled before it
started goes through :meth:`ModalWorker.kill_infrastructure`, which terminates
the sandboxes carrying its ``prefect.flow-run-id`` tag.

The flow run executes on Modal, so ``PREFECT_API_URL`` must be reachable from
Modal (a public URL or a tunnel for a self-hosted server).

``modal`` is imported lazily (inside the provider's methods), never at import
time.

Example:
    ```bash
    prefect work-pool create modal --type modal
    prefect worker start --pool modal
    ```
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from ipaddress import ip_address
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import urlparse

import sys

import anyio
import anyio.abc
import prefect
from pydantic import Field, PrivateAttr
from prefect.client.orchestration import ServerType
from prefect.exceptions import InfrastructureNotFound
from prefect.utilities.asyncutils import run_sync_in_worker_thread
from prefect.workers.base import BaseJobConfiguration, BaseVariables, BaseWorker, BaseWorkerResult

from blocks.modal_credentials import ModalCredentials
from cloud_runs.errors import ConfigurationError
from cloud_runs.redact import Redactor
from cloud_runs.sandboxes.modal import ModalSandboxSettings

if TYPE_CHECKING:  # pragma: no cover
    import modal
    from prefect.client.schemas.objects import APIFlow, FlowRun, WorkPool
    from prefect.client.schemas.responses import DeploymentResponse

    from cloud_runs.sandboxes.modal import ModalSandbox

#: Modal tag carrying the flow run id; cancellation finds sandboxes by it.
FLOW_RUN_ID_TAG = "prefect.flow-run-id"
FLOW_RUN_NAME_TAG = "prefect.flow-run-name"
DEPLOYMENT_ID_TAG = "prefect.deployment-id"
#: The sandbox outlives the command's own timeout by this much, so a command
#: killed at its timeout still reports its exit code before Modal ends the sandbox.
SANDBOX_GRACE_SECONDS = 60
MAX_TIMEOUT_SECONDS = 24 * 60 * 60  # Modal's longest sandbox lifetime
DEFAULT_APP_NAME = "prefect-flow-runs"
DEFAULT_WORKDIR = "/opt/prefect"



def _default_image() -> str:
    """Prefect's official image for this Prefect and Python version (as a Docker work pool defaults to).

    Computed here because ``prefect.utilities.dockerutils`` imports ``docker``.
    """
    return f"prefecthq/prefect:{prefect.__version__.split('+')[0]}-python{sys.version_info.major}.{sys.version_info.minor}"


# Names of environment variables whose values never travel as plain sandbox
# environment (they go into a modal.Secret instead).
_SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|PASSWD|AUTH|CREDENTIAL|PRIVATE|CONNECTION_URL|DSN", re.IGNORECASE)
# Worker-side settings that mean nothing (or leak too much) on another machine.
_WORKER_ONLY_PREFIXES = ("PREFECT_SERVER_",)
_WORKER_ONLY_NAMES = frozenset({"PREFECT_HOME", "PREFECT_PROFILES_PATH", "PREFECT__WORKER_NAME"})


def split_environment(env: Mapping[str, str | None]) -> tuple[dict[str, str], dict[str, str]]:
    """Splits a flow run's environment into (plain, secret) by variable name.

    Example:
        >>> split_environment({"PREFECT_API_URL": "https://p/api", "PREFECT_API_KEY": "pnu_x"})
        ({'PREFECT_API_URL': 'https://p/api'}, {'PREFECT_API_KEY': 'pnu_x'})
    """
    plain: dict[str, str] = {}
    secret: dict[str, str] = {}
    for name, value in env.items():
        if value is None:
            continue
        (secret if _SECRET_NAME.search(name) else plain)[name] = str(value)
    return plain, secret


class _FlowRunSandboxSettings(ModalSandboxSettings):
    """The Modal provider's settings plus an optional Dockerfile on the worker's machine."""

    dockerfile: Optional[str] = None

    def modal_image(self) -> modal.Image:
        import modal

        if self.dockerfile:
            path = Path(self.dockerfile).expanduser().resolve()
            return modal.Image.from_dockerfile(path, context_dir=path.parent)
        return super().modal_image()


# -- job variables (the work pool's form) and job configuration --------------

_IMAGE_DESCRIPTION = (
    "Registry image the flow run starts from (Docker Hub, or a full registry reference). It needs "
    "Python, Prefect 3 and the flow's dependencies, like a Docker work pool's image."
)
_DOCKERFILE_DESCRIPTION = (
    "Optional path to a Dockerfile on the worker's machine; when set, Modal builds it (its folder is "
    "the build context, cached by Modal) and `image` is ignored."
)
_CPU_DESCRIPTION = "CPU cores reserved for the sandbox (fractions allowed)."
_MEMORY_DESCRIPTION = "Memory reserved for the sandbox, in MiB."
_TIMEOUT_DESCRIPTION = (
    "Seconds the flow run may take; the command is killed then (the flow run is marked crashed) and "
    f"the sandbox ends itself shortly after. At most {MAX_TIMEOUT_SECONDS} (Modal's limit)."
)
_CREDENTIALS_DESCRIPTION = (
    "A `modal-credentials` block (Modal token ID and secret). When empty, the worker uses "
    "MODAL_TOKEN_ID and MODAL_TOKEN_SECRET from its own environment."
)
_APP_DESCRIPTION = "Modal app the sandboxes belong to (created on first use)."
_MODAL_ENVIRONMENT_DESCRIPTION = "Modal environment of the app; the token's default when empty."
_BLOCK_NETWORK_DESCRIPTION = (
    "Cut the sandbox off the network. A flow run must reach the Prefect API, so this is refused; "
    "restrict egress with the CIDR allowlist instead."
)
_CIDR_DESCRIPTION = (
    "If set, the sandbox may reach only these CIDR ranges (for example your Prefect server's "
    "address and your package mirror). Empty: unrestricted egress."
)
_REGION_DESCRIPTION = "Modal region (or list of regions) to run in; any when empty."
_WORKDIR_DESCRIPTION = "Working directory of the flow run inside the sandbox (the Prefect images' default)."
_STREAM_DESCRIPTION = "Stream the sandbox's output into the worker's log."
_ENV_DESCRIPTION = (
    "Environment variables of the flow run. Names that look secret (containing KEY, TOKEN, SECRET, "
    "PASSWORD, AUTH, ...) travel as a Modal Secret, never as plain sandbox environment."
)


class ModalWorkerVariables(BaseVariables):
    """The variables of a ``modal`` work pool; each renders as a form field in the Prefect UI."""

    env: dict[str, Optional[str]] = Field(default_factory=dict, title="Environment Variables", description=_ENV_DESCRIPTION)
    image: str = Field(
        default=_default_image(), title="Image", description=_IMAGE_DESCRIPTION,
        examples=["prefecthq/prefect:3-python3.11"],
    )
    dockerfile: Optional[str] = Field(default=None, title="Dockerfile", description=_DOCKERFILE_DESCRIPTION)
    cpu: float = Field(default=1.0, gt=0, title="CPU", description=_CPU_DESCRIPTION)
    memory: int = Field(default=2048, gt=0, title="Memory (MiB)", description=_MEMORY_DESCRIPTION)
    timeout: int = Field(default=3600, gt=0, le=MAX_TIMEOUT_SECONDS, title="Timeout (seconds)", description=_TIMEOUT_DESCRIPTION)
    modal_credentials: Optional[ModalCredentials] = Field(default=None, title="Modal Credentials", description=_CREDENTIALS_DESCRIPTION)
    app_name: str = Field(default=DEFAULT_APP_NAME, title="Modal App", description=_APP_DESCRIPTION)
    modal_environment: Optional[str] = Field(default=None, title="Modal Environment", description=_MODAL_ENVIRONMENT_DESCRIPTION)
    block_network: bool = Field(default=False, title="Block Network", description=_BLOCK_NETWORK_DESCRIPTION)
    outbound_cidr_allowlist: Optional[list[str]] = Field(
        default=None, title="Outbound CIDR Allowlist", description=_CIDR_DESCRIPTION, examples=[["203.0.113.7/32"]]
    )
    region: Optional[str] = Field(default=None, title="Region", description=_REGION_DESCRIPTION, examples=["us-east"])
    workdir: str = Field(default=DEFAULT_WORKDIR, title="Working Directory", description=_WORKDIR_DESCRIPTION)
    stream_output: bool = Field(default=True, title="Stream Output", description=_STREAM_DESCRIPTION)


class ModalWorkerJobConfiguration(BaseJobConfiguration):
    """Everything the worker needs to run one flow run in a Modal sandbox.

    Built by Prefect from the work pool's base job template and the
    deployment's job variables; :meth:`prepare_for_flow_run` adds the flow
    run's environment, command and tags.

    Example:
        >>> config = ModalWorkerJobConfiguration(image="prefecthq/prefect:3-python3.11", cpu=0.5)
        >>> config.memory, config.timeout
        (2048, 3600)
    """

    image: str = Field(default=_default_image(), description=_IMAGE_DESCRIPTION)
    dockerfile: Optional[str] = Field(default=None, description=_DOCKERFILE_DESCRIPTION)
    cpu: float = Field(default=1.0, gt=0, description=_CPU_DESCRIPTION)
    memory: int = Field(default=2048, gt=0, description=_MEMORY_DESCRIPTION)
    timeout: int = Field(default=3600, gt=0, le=MAX_TIMEOUT_SECONDS, description=_TIMEOUT_DESCRIPTION)
    modal_credentials: Optional[ModalCredentials] = Field(default=None, description=_CREDENTIALS_DESCRIPTION)
    app_name: str = Field(default=DEFAULT_APP_NAME, description=_APP_DESCRIPTION)
    modal_environment: Optional[str] = Field(default=None, description=_MODAL_ENVIRONMENT_DESCRIPTION)
    block_network: bool = Field(default=False, description=_BLOCK_NETWORK_DESCRIPTION)
    outbound_cidr_allowlist: Optional[list[str]] = Field(default=None, description=_CIDR_DESCRIPTION)
    region: Optional[str] = Field(default=None, description=_REGION_DESCRIPTION)
    workdir: str = Field(default=DEFAULT_WORKDIR, description=_WORKDIR_DESCRIPTION)
    stream_output: bool = Field(default=True, description=_STREAM_DESCRIPTION)
    # Modal tags of the flow run's sandbox, set by prepare_for_flow_run (not a job variable).
    _tags: dict[str, str] = PrivateAttr(default_factory=dict)

    @classmethod
    def _base_environment(cls) -> dict[str, str]:
        # The flow run executes on another machine: the worker's server
        # settings and local paths mean nothing there.
        return {
            name: value
            for name, value in super()._base_environment().items()
            if name not in _WORKER_ONLY_NAMES and not name.startswith(_WORKER_ONLY_PREFIXES)
        }

    def prepare_for_flow_run(
        self,
        flow_run: FlowRun,
        deployment: DeploymentResponse | None = None,
        flow: APIFlow | None = None,
        work_pool: WorkPool | None = None,
        worker_name: str | None = None,
        worker_id: Any = None,
    ) -> None:
        """Adds the flow run's environment, command and Modal tags."""
        user_labels = dict(self.labels)
        super().prepare_for_flow_run(flow_run, deployment, flow, work_pool, worker_name, worker_id=worker_id)
        self._tags = {
            **user_labels,
            FLOW_RUN_ID_TAG: str(flow_run.id),
            FLOW_RUN_NAME_TAG: flow_run.name,
            **({DEPLOYMENT_ID_TAG: str(deployment.id)} if deployment is not None else {}),
        }

    # -- helpers used by the worker ------------------------------------------

    @property
    def tags(self) -> dict[str, str]:
        """Modal tags of the flow run's sandbox (user labels plus the flow run's id and name)."""
        return dict(self._tags)

    @property
    def flow_run_id(self) -> str:
        return self._tags.get(FLOW_RUN_ID_TAG) or self.labels.get("prefect.io/flow-run-id", "")

    def check(self) -> None:
        """Refuses settings that cannot work, before anything is created.

        Raises:
            ConfigurationError: Naming the job variable and the fix.
        """
        if self.block_network:
            raise ConfigurationError(
                "the modal work pool's job variable block_network is true: the flow run could not reach the Prefect API",
                hint="set block_network to false and restrict egress with outbound_cidr_allowlist instead",
            )
        if not self.env.get("PREFECT_API_URL"):
            raise ConfigurationError(
                "the flow run has no PREFECT_API_URL: the sandbox would not know where the Prefect API is",
                hint="start the worker with PREFECT_API_URL set, or set env.PREFECT_API_URL in the pool's job variables",
            )
        if self.dockerfile and not Path(self.dockerfile).expanduser().is_file():
            raise ConfigurationError(
                f"the modal work pool's job variable dockerfile names {self.dockerfile}, which is not a file on the worker",
                hint="give the path of a Dockerfile on the worker's machine, or clear it to use `image`",
            )

    def argv(self) -> list[str]:
        """The command as arguments; the flow run id is appended to Prefect's default command."""
        command = self.command or self._base_flow_run_command()
        argv = shlex.split(command)
        if command.strip() == self._base_flow_run_command() and self.flow_run_id:
            argv.append(self.flow_run_id)
        return argv

    def sandbox_settings(self, plain_env: Mapping[str, str]) -> _FlowRunSandboxSettings:
        """The Modal provider settings for this flow run's sandbox."""
        credentials = self.modal_credentials
        return _FlowRunSandboxSettings(
            app_name=self.app_name,
            **(credentials.as_kwargs() if credentials else {}),
            environment_name=self.modal_environment,
            image_source="registry",
            image=self.image,
            dockerfile=self.dockerfile,
            user=None,  # the image's own user, like a Docker work pool
            workdir=self.workdir,
            region=self.region,
            block_network=self.block_network,
            outbound_cidr_allowlist=self.outbound_cidr_allowlist,
            cpu=self.cpu,
            memory_mb=self.memory,
            lifetime_seconds=self.timeout + SANDBOX_GRACE_SECONDS,
            exec_timeout_seconds=self.timeout,
            environment=dict(plain_env),
        )


class ModalWorkerResult(BaseWorkerResult):
    """The flow-run command's exit code; ``identifier`` is the Modal sandbox id."""


class ModalWorker(BaseWorker[ModalWorkerJobConfiguration, ModalWorkerVariables, ModalWorkerResult]):
    """Runs each flow run of a ``modal`` work pool in its own Modal sandbox.

    Example:
        ```python
        import anyio
        from cloud_runs.workers.modal import ModalWorker

        async def main():
            async with ModalWorker(work_pool_name="modal") as worker:
                await worker.start()

        anyio.run(main)
        ```
    """

    type = "modal"
    job_configuration = ModalWorkerJobConfiguration
    job_configuration_variables = ModalWorkerVariables
    _description = (
        "Execute flow runs in Modal sandboxes (gVisor-isolated containers) from a self-hosted Prefect "
        "server. Requires a Modal token and a Prefect API reachable from Modal."
    )
    _display_name = "Modal"
    _documentation_url = "https://modal.com/docs/guide/sandbox"
    _logo_url = "https://modal.com/assets/favicon.svg"
    #: How often a running flow run's state is checked for cancellation, and how
    #: long the runner inside the sandbox gets to stop it before the worker
    #: terminates the sandbox itself.
    cancellation_poll_seconds: float = 5.0
    cancellation_grace_seconds: float = 30.0

    async def setup(self) -> None:
        await super().setup()
        if self.client.server_type == ServerType.EPHEMERAL:
            raise ConfigurationError(
                "the Modal worker cannot use an ephemeral Prefect server: flow runs on Modal must reach the API",
                hint="run `prefect server start` where Modal can reach it and set PREFECT_API_URL to its public URL",
            )

    async def run(
        self,
        flow_run: FlowRun,
        configuration: ModalWorkerJobConfiguration,
        task_status: Optional[anyio.abc.TaskStatus[str]] = None,
    ) -> ModalWorkerResult:
        """Runs the flow run in a new Modal sandbox and waits for it to end.

        Raises:
            ConfigurationError: The job configuration cannot work (nothing was created).
            SandboxError: Modal refused the credentials or the sandbox.
        """
        logger = self.get_flow_run_logger(flow_run)
        configuration.check()
        plain_env, secret_env = split_environment(configuration.env)
        _warn_if_unreachable(logger, plain_env.get("PREFECT_API_URL", ""))
        settings = configuration.sandbox_settings(plain_env)
        argv = configuration.argv()

        sandbox: ModalSandbox = await run_sync_in_worker_thread(
            settings.create, str(flow_run.id), configuration.tags
        )
        # From here on the sandbox exists: it must be terminated on every path
        # except a worker shutdown, when the flow run keeps running on Modal.
        logger.info(f"Flow run {flow_run.name!r} runs in Modal sandbox {sandbox.id} (app {settings.app_name!r}).")
        if task_status is not None:
            task_status.started(sandbox.id)

        redactor = Redactor(secret_env.values())
        worker_logger = self._logger

        def on_output(stream: str, line: str) -> None:
            if configuration.stream_output:
                worker_logger.info("%s | %s", flow_run.name, redactor.redact(line))

        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._terminate_when_cancelled, flow_run, settings, sandbox.id)
                result = await run_sync_in_worker_thread(
                    sandbox.exec, argv, env=secret_env, timeout=configuration.timeout, on_output=on_output
                )
                group.cancel_scope.cancel()
        except anyio.get_cancelled_exc_class():
            # The worker is stopping; the flow run goes on and its sandbox
            # ends by itself after the timeout, like a Docker worker's container.
            logger.warning(f"Worker stopping: flow run {flow_run.name!r} keeps running in Modal sandbox {sandbox.id}.")
            raise
        except BaseException:
            with anyio.CancelScope(shield=True):
                await run_sync_in_worker_thread(sandbox.destroy)
            raise
        with anyio.CancelScope(shield=True):
            await run_sync_in_worker_thread(sandbox.destroy)

        if result.timed_out:
            logger.error(f"Flow run {flow_run.name!r} exceeded its timeout of {configuration.timeout} s; it was killed.")
        elif result.exit_code != 0:
            logger.error(f"Flow run {flow_run.name!r} exited with code {result.exit_code} in sandbox {sandbox.id}.")
        return ModalWorkerResult(identifier=sandbox.id, status_code=result.exit_code)

    async def _terminate_when_cancelled(self, flow_run: FlowRun, settings: ModalSandboxSettings, sandbox_id: str) -> None:
        """Terminates the sandbox when the flow run is cancelled and the command did not end by itself.

        Prefect's runner inside the sandbox handles cancellation of a running
        flow and then exits; this is the backstop for a command that never
        started the flow (or stopped listening): after ``cancellation_grace_seconds``
        in Cancelling/Cancelled, the sandbox is terminated and the run marked Cancelled.
        """
        logger = self.get_flow_run_logger(flow_run)
        cancelling_since: float | None = None
        while True:
            await anyio.sleep(self.cancellation_poll_seconds)
            try:
                current = await self.client.read_flow_run(flow_run.id)
            except Exception as exc:  # a blip in the API must not end the flow run
                logger.debug(f"could not read flow run {flow_run.id}: {exc!r}")
                continue
            state = current.state
            if not state or not (state.is_cancelling() or state.is_cancelled()):
                cancelling_since = None
                continue
            now = anyio.current_time()
            cancelling_since = cancelling_since if cancelling_since is not None else now
            if now - cancelling_since < self.cancellation_grace_seconds:
                continue
            # Shielded: terminating ends the command, which stops this watcher.
            with anyio.CancelScope(shield=True):
                terminated = await run_sync_in_worker_thread(
                    _terminate_flow_run_sandboxes, settings, str(flow_run.id), sandbox_id
                )
                logger.info(f"Flow run {flow_run.name!r} was cancelled: terminated Modal sandbox(es) {', '.join(terminated) or sandbox_id}.")
                if state.is_cancelling():
                    await self._mark_flow_run_as_cancelled(
                        current, state_updates={"message": "Flow run cancelled; the worker terminated its Modal sandbox."}
                    )
            return

    async def kill_infrastructure(
        self,
        infrastructure_pid: str,
        configuration: ModalWorkerJobConfiguration,
        grace_seconds: int = 30,
    ) -> None:
        """Terminates the sandboxes of a cancelled flow run (by its tag, and by the sandbox id).

        Raises:
            InfrastructureNotFound: No running sandbox carries the flow run's tag or id.
        """
        plain_env, _ = split_environment(configuration.env)
        settings = configuration.sandbox_settings(plain_env)
        terminated = await run_sync_in_worker_thread(
            _terminate_flow_run_sandboxes, settings, configuration.flow_run_id, infrastructure_pid
        )
        if not terminated:
            raise InfrastructureNotFound(
                f"no running Modal sandbox for flow run {configuration.flow_run_id} (sandbox {infrastructure_pid})"
            )
        self._logger.info(f"Terminated Modal sandbox(es) {', '.join(terminated)} of flow run {configuration.flow_run_id}.")


def _terminate_flow_run_sandboxes(settings: ModalSandboxSettings, flow_run_id: str, sandbox_id: str | None) -> list[str]:
    """Terminates every running sandbox of the flow run; returns their ids."""
    found = [ref.id for ref in settings.list_sandboxes({FLOW_RUN_ID_TAG: flow_run_id})] if flow_run_id else []
    if sandbox_id and sandbox_id not in found and _sandbox_running(settings, sandbox_id):
        found.append(sandbox_id)
    for found_id in found:
        settings.destroy_by_id(found_id)
    return found


def _sandbox_running(settings: ModalSandboxSettings, sandbox_id: str) -> bool:
    import modal

    try:
        return modal.Sandbox.from_id(sandbox_id, client=settings.client()).poll() is None
    except modal.exception.NotFoundError:
        return False


def _warn_if_unreachable(logger: Any, api_url: str) -> None:
    host = urlparse(api_url).hostname or ""
    try:
        local = host == "localhost" or ip_address(host).is_loopback or ip_address(host).is_private
    except ValueError:
        local = False
    if local:
        logger.warning(
            f"PREFECT_API_URL is {api_url}: a Modal sandbox cannot reach a local or private address. "
            "Expose the Prefect server (public URL or tunnel) and point PREFECT_API_URL at it."
        )
