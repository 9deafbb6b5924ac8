"""`cloud-runs deploy`: create the work pools ``prefect.yaml`` names, then deploy everything.

``prefect --no-prompt deploy --all`` exits 1 and creates nothing while any
deployment names a work pool that does not exist yet, so the pools come first.
Creating is idempotent: pools that exist are left as they are (their base job
template and any edits made in the UI survive). Optional per-pool concurrency
limits keep every deployment on a pool, together, within a budget.

Example:
    ```bash
    export PREFECT_API_URL=http://127.0.0.1:4200/api
    cloud-runs deploy                                  # pools docker, modal, local + 5 deployments
    cloud-runs deploy --pool-limit docker=4 --skip-pool modal
    ```
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cloud_runs.errors import CloudRunsError, ConfigurationError, InputError

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_FILE = PROJECT_DIR / "prefect.yaml"
#: Work pool types of the pools prefect.yaml names.
POOL_TYPES: dict[str, str] = {"docker": "docker", "modal": "modal", "local": "process"}
POOL_TIMEOUT_SECONDS = 120
DEPLOY_TIMEOUT_SECONDS = 600


class DeployError(CloudRunsError):
    """A work pool or the deployments could not be created."""


@dataclass(frozen=True)
class Pool:
    name: str
    type: str
    limit: int | None = None


def pools_of(prefect_yaml: Path) -> list[str]:
    """The work pool names the deployments of ``prefect_yaml`` use, in file order."""
    import yaml

    try:
        document = yaml.safe_load(prefect_yaml.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise InputError(f"cannot read {prefect_yaml}: {error}", hint="pass --file with the project's prefect.yaml") from None
    names: list[str] = []
    for deployment in document.get("deployments") or []:
        name = ((deployment or {}).get("work_pool") or {}).get("name")
        if name and name not in names:
            names.append(name)
    return names


def plan_pools(names: Sequence[str], types: Mapping[str, str], limits: Mapping[str, int],
               skip: Sequence[str] = ()) -> list[Pool]:
    """Pairs each pool name with its type and limit; raises before any side effect."""
    unknown = [name for name in names if name not in types and name not in skip]
    if unknown:
        raise InputError(f"no work pool type known for {', '.join(unknown)}",
                         hint="pass --pool-type NAME=TYPE (process, docker, modal, ...) or --skip-pool NAME")
    stray = [name for name in limits if name not in names]
    if stray:
        raise InputError(f"--pool-limit names {', '.join(stray)}, which prefect.yaml does not use",
                         hint=f"use one of {', '.join(names)}")
    return [Pool(name, types[name], limits.get(name)) for name in names if name not in skip]


def _pairs(values: Sequence[str], option: str, convert=str) -> dict[str, object]:  # noqa: ANN001
    pairs: dict[str, object] = {}
    for value in values:
        name, sep, raw = value.partition("=")
        try:
            if not (sep and name and raw):
                raise ValueError
            pairs[name] = convert(raw)
        except ValueError:
            raise InputError(f"{option} {value!r} is not NAME=VALUE", hint=f"e.g. {option} docker=4") from None
    return pairs


def _prefect_command() -> list[str]:
    beside = Path(sys.executable).with_name("prefect")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("prefect")
    if found:
        return [found]
    raise ConfigurationError("the prefect command is not installed", hint="pip install -e . (it brings prefect)")


def _run(argv: list[str], *, timeout: float, cwd: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DeployError(f"`{' '.join(argv[1:4])} ...` did not finish within {timeout:.0f} s",
                          hint="check that PREFECT_API_URL answers (prefect server start)") from None


def _existing_pools() -> dict[str, str]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return {pool.name: pool.type for pool in client.read_work_pools()}


def ensure_pools(pools: Sequence[Pool], *, prefect: list[str], env: Mapping[str, str], cwd: Path,
                 echo=print) -> list[str]:  # noqa: ANN001
    """Creates the missing pools and applies limits; returns the names created.

    A pool that exists with another type is an error (deployments would run on
    the wrong infrastructure).
    """
    existing = _existing_pools()
    created = []
    for pool in pools:
        if pool.name in existing:
            if existing[pool.name] != pool.type:
                raise DeployError(f"work pool {pool.name!r} exists with type {existing[pool.name]!r}, not {pool.type!r}",
                                  hint=f"delete it (prefect work-pool delete {pool.name}) or pass --pool-type "
                                       f"{pool.name}={existing[pool.name]}")
            echo(f"deploy: work pool {pool.name} ({pool.type}) exists")
        else:
            result = _run([*prefect, "work-pool", "create", pool.name, "--type", pool.type],
                          timeout=POOL_TIMEOUT_SECONDS, cwd=cwd, env=env)
            if result.returncode != 0 and "already exists" not in result.stdout + result.stderr:
                raise DeployError(f"could not create work pool {pool.name!r} of type {pool.type!r}:\n"
                                  f"{(result.stdout + result.stderr).strip()[-2000:]}",
                                  hint="check the type is installed (`prefect work-pool get-default-base-job-template "
                                       f"--type {pool.type}`) and the server answers")
            created.append(pool.name)
            echo(f"deploy: work pool {pool.name} ({pool.type}) created")
        if pool.limit is not None:
            result = _run([*prefect, "work-pool", "set-concurrency-limit", pool.name, str(pool.limit)],
                          timeout=POOL_TIMEOUT_SECONDS, cwd=cwd, env=env)
            if result.returncode != 0:
                raise DeployError(f"could not set the concurrency limit of {pool.name!r}:\n{result.stderr.strip()[-2000:]}",
                                  hint="check the server answers")
            echo(f"deploy: work pool {pool.name} runs at most {pool.limit} flow runs at once")
    return created


def deploy(prefect_yaml: Path = DEFAULT_FILE, *, pool_types: Mapping[str, str] | None = None,
           pool_limits: Mapping[str, int] | None = None, skip_pools: Sequence[str] = (), echo=print) -> int:  # noqa: ANN001
    """Creates the pools, then runs ``prefect --no-prompt deploy --all``; returns its exit code.

    Raises:
        ConfigurationError: No ``PREFECT_API_URL``: the deployments would land in
            a throwaway embedded server.
        InputError: A pool has no known type, or a limit names an unused pool.
        DeployError: A pool could not be created.
    """
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise ConfigurationError("PREFECT_API_URL is not set: the deployments would go to a throwaway embedded server",
                                 hint="start `prefect server start` and export PREFECT_API_URL=http://127.0.0.1:4200/api "
                                      "(or `prefect cloud login`)")
    prefect_yaml = prefect_yaml.resolve()
    if not prefect_yaml.is_file():
        raise InputError(f"{prefect_yaml} does not exist", hint="pass --file with the project's prefect.yaml")
    project_dir = prefect_yaml.parent
    pools = plan_pools(pools_of(prefect_yaml), {**POOL_TYPES, **(pool_types or {})}, pool_limits or {}, skip_pools)
    prefect = _prefect_command()
    # Process workers run the flows from this checkout (prefect.yaml's pull step).
    env = {**os.environ, "CLOUD_RUNS_PROJECT_DIR": os.environ.get("CLOUD_RUNS_PROJECT_DIR", str(project_dir))}
    ensure_pools(pools, prefect=prefect, env=env, cwd=project_dir, echo=echo)
    argv = [*prefect, "--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_yaml)]
    if skip_pools:
        # `deploy --all` would stop at the first deployment on a skipped pool.
        argv = [*prefect, "--no-prompt", "deploy", "--prefect-file", str(prefect_yaml)]
        for name in _deployments_not_on(prefect_yaml, skip_pools):
            argv += ["--name", name]
    result = _run(argv, timeout=DEPLOY_TIMEOUT_SECONDS, cwd=project_dir, env=env)
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        echo(output[-4000:])
        echo(f"deploy: `prefect deploy` failed (exit {result.returncode})")
    else:
        echo(f"deploy: deployments created from {prefect_yaml.name}")
    return result.returncode


def _deployments_not_on(prefect_yaml: Path, skip_pools: Sequence[str]) -> list[str]:
    import yaml

    document = yaml.safe_load(prefect_yaml.read_text()) or {}
    names = []
    for deployment in document.get("deployments") or []:
        if ((deployment.get("work_pool") or {}).get("name")) in skip_pools:
            continue
        # `prefect deploy --name FLOW/DEPLOYMENT` matches FLOW against the entrypoint's function
        # name, so nothing needs importing to name a deployment.
        names.append(f"{deployment['entrypoint'].rsplit(':', 1)[-1]}/{deployment['name']}")
    return names


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The ``cloud-runs deploy`` options (usable as a subcommand's parser)."""
    parser = parser or argparse.ArgumentParser(prog="cloud-runs deploy", description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE, help="prefect.yaml to deploy (default: the project's)")
    parser.add_argument("--pool-type", action="append", default=[], metavar="NAME=TYPE",
                        help="work pool type of a pool prefect.yaml names (default: docker=docker, modal=modal, local=process)")
    parser.add_argument("--pool-limit", action="append", default=[], metavar="NAME=N",
                        help="most flow runs a pool runs at once, over all its deployments")
    parser.add_argument("--skip-pool", action="append", default=[], metavar="NAME",
                        help="neither create this pool nor deploy the deployments on it (e.g. modal without credentials)")
    return parser


def run(args: argparse.Namespace) -> int:
    """Runs the parsed ``cloud-runs deploy`` command; errors print with their hint."""
    try:
        limits = _pairs(args.pool_limit, "--pool-limit", lambda raw: _positive(int(raw)))
        return deploy(args.file, pool_types=_pairs(args.pool_type, "--pool-type"), pool_limits=limits,
                      skip_pools=args.skip_pool)
    except CloudRunsError as error:
        print(f"cloud-runs deploy: {error}", file=sys.stderr)
        return 2


def _positive(value: int) -> int:
    if value < 1:
        raise ValueError
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cloud_runs.deploy [--pool-limit docker=4] ...``"""
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
