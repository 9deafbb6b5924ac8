"""`sandbox-reaper`: destroys sandboxes that nothing will clean up any more.

A run tears its sandbox down in ``finally`` and in its state hooks, and every
sandbox ends itself after its lifetime. The reaper is the third line: when a
worker or flow-run process is killed outright (OOM, SIGKILL, a lost host),
neither hook runs, and a sandbox may hold resources until its lifetime ends.

For each provider, the reaper lists the sandboxes carrying the project's labels
and destroys a sandbox when

* its flow run (label ``cloud-runs.run-id``) is in a final state (completed,
  failed, cancelled, crashed),
* its flow run is unknown to this Prefect server (an orphan),
* its flow run still says RUNNING but has gone silent: flow runs emit a
  ``prefect.flow-run.heartbeat`` event every ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``
  seconds (180 by default), and a killed process leaves its run RUNNING
  forever; when the run's last heartbeat is older than
  ``heartbeat_timeout_seconds`` the run is taken for dead (runs that never
  sent one are judged by state alone, so heartbeats turned off never
  condemn a live run), or
* its lifetime is over (label ``cloud-runs.expires-at``), whatever its run.

Any other sandbox (its run scheduled, pending, paused, or running and
heard from) is left alone. What was destroyed (and why) goes into a markdown artifact.

Providers are given as ``docker``, ``local`` or ``modal`` (the provider's
default settings: local Docker engine, default local directory, Modal
credentials from the environment) or as a sandbox block ``provider/NAME``
(that block's engine, directory or Modal credentials and app).

Example:
    ```bash
    prefect deployment run sandbox-reaper/local --param 'providers=["docker", "modal/default"]'
    ```
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Annotated

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field, TypeAdapter

from cloud_runs.errors import InputError
from cloud_runs.settings import SANDBOX_PROVIDERS
from cloud_runs.sandboxes import SandboxSettings, is_expired
from cloud_runs.sandboxes.base import EXPIRES_AT_LABEL, RUN_ID_LABEL, SandboxRef

HEARTBEAT_EVENT = "prefect.flow-run.heartbeat"
#: Pseudo state of a RUNNING flow run whose heartbeats stopped.
SILENT = "SILENT"


class ReapedSandbox(BaseModel):
    provider: str
    id: str
    run_id: str
    reason: str


class ReaperReport(BaseModel):
    """What one reaper run found and did."""

    destroyed: list[ReapedSandbox] = Field(default_factory=list)
    kept: int = 0
    errors: list[str] = Field(default_factory=list)


@flow(name="sandbox-reaper")
def sandbox_reaper(
    providers: Annotated[list[str], Field(description="docker, local, modal, or a sandbox block as provider/NAME.")] = ["docker", "local"],
    heartbeat_timeout_seconds: Annotated[int, Field(gt=0, description=(
        "A RUNNING flow run silent for this long is taken for dead; keep it above the heartbeat frequency "
        "(PREFECT_FLOWS_HEARTBEAT_FREQUENCY, 180 s by default)."))] = 600,
    dry_run: Annotated[bool, Field(description="Report what would be destroyed, destroy nothing.")] = False,
) -> ReaperReport:
    """Destroys the sandboxes whose run is over or unknown, or whose lifetime ended."""
    from prefect.client.orchestration import get_client

    settings = [(reference, _settings(reference)) for reference in providers]  # every reference checked first
    log = get_run_logger()
    report = ReaperReport()
    states: dict[str, str | None] = {}
    with get_client(sync_client=True) as client:
        for reference, provider_settings in settings:
            _reap(client, reference, provider_settings, states, heartbeat_timeout_seconds, dry_run, report, log)
    create_markdown_artifact(markdown=_report_markdown(report, dry_run), key="sandbox-reaper",
                             description="Sandboxes the reaper destroyed")
    return report


def _reap(client, reference: str, provider_settings: SandboxSettings, states: dict[str, str | None],  # noqa: ANN001
          heartbeat_timeout_seconds: float, dry_run: bool, report: ReaperReport, log) -> None:  # noqa: ANN001
    """Destroys the sandboxes of one provider whose run is over; ``states`` caches run states across providers."""
    try:
        found = provider_settings.list_sandboxes()
    except Exception as error:  # one unreachable provider must not stop the others
        report.errors.append(f"{reference}: could not list sandboxes: {error}")
        log.warning("%s: could not list sandboxes: %s", reference, error)
        return
    for sandbox in found:
        run_id = sandbox.labels.get(RUN_ID_LABEL, "")
        if run_id not in states:
            states[run_id] = _flow_run_state(client, run_id, heartbeat_timeout_seconds)
        reason = reap_reason(sandbox, states[run_id])
        if reason is None:
            report.kept += 1
            continue
        if not dry_run:
            try:
                provider_settings.destroy_by_id(sandbox.id)
            except Exception as error:
                report.errors.append(f"{reference}: could not destroy {sandbox.id}: {error}")
                log.warning("%s: could not destroy %s: %s", reference, sandbox.id, error)
                continue
        report.destroyed.append(ReapedSandbox(provider=sandbox.provider, id=sandbox.id, run_id=run_id, reason=reason))
        log.info("%s %s sandbox %s: %s", "would destroy" if dry_run else "destroyed", sandbox.provider, sandbox.id, reason)


def reap_reason(sandbox: SandboxRef, run_state: str | None, now: datetime | None = None) -> str | None:
    """Why ``sandbox`` should go, or None to keep it.

    ``run_state`` is the flow run's state type (``RUNNING``, ``COMPLETED``...),
    ``SILENT`` for a running flow run whose heartbeats stopped, or None when
    the run is unknown.

    Example:
        >>> ref = SandboxRef("docker", "c1", {"cloud-runs.run-id": "r"})
        >>> reap_reason(ref, None)
        'its flow run r is unknown (orphan)'
        >>> reap_reason(ref, "RUNNING") is None
        True
    """
    run_id = sandbox.labels.get(RUN_ID_LABEL, "")
    if is_expired(sandbox.labels, now):
        return f"its lifetime ended at {sandbox.labels[EXPIRES_AT_LABEL]}"
    if run_state is None:
        return f"its flow run {run_id} is unknown (orphan)"
    if run_state in ("COMPLETED", "FAILED", "CANCELLED", "CRASHED"):
        return f"its flow run {run_id} is {run_state.lower()}"
    if run_state == SILENT:
        return f"its flow run {run_id} says running but sends no heartbeats (its process is gone)"
    return None


def _settings(reference: str) -> SandboxSettings:
    """Default settings of a provider, or a sandbox block when given as provider/NAME."""
    if "/" in reference:
        from blocks.loading import load_block, parse_sandbox_reference

        block_class, block_name = parse_sandbox_reference(reference)
        return load_block(block_class, block_name, "providers")
    if reference not in SANDBOX_PROVIDERS:
        raise InputError(f"provider {reference!r} is not one of {', '.join(SANDBOX_PROVIDERS)} (optionally /BLOCK)",
                         hint='pass e.g. ["docker", "local", "modal/default"]')
    return TypeAdapter(SandboxSettings).validate_python({"type": reference})


def _flow_run_state(client, run_id: str, heartbeat_timeout_seconds: float) -> str | None:  # noqa: ANN001
    """The flow run's state type (``SILENT`` when running without heartbeats), or None when unknown."""
    from prefect.exceptions import ObjectNotFound

    try:
        flow_run_id = uuid.UUID(run_id)
    except ValueError:
        return None  # not made by a flow run
    try:
        flow_run = client.read_flow_run(flow_run_id)
    except ObjectNotFound:
        return None
    state = flow_run.state.type.value if flow_run.state else "SCHEDULED"
    if state == "RUNNING":
        last = _last_heartbeat(client, flow_run_id)
        if last is not None and (datetime.now(timezone.utc) - last).total_seconds() > heartbeat_timeout_seconds:
            return SILENT
    return state


def _last_heartbeat(client, flow_run_id: uuid.UUID) -> datetime | None:  # noqa: ANN001
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter

    since = datetime.now(timezone.utc) - timedelta(days=2)
    page = client.read_events(
        filter=EventFilter(occurred=EventOccurredFilter(since=since), event=EventNameFilter(name=[HEARTBEAT_EVENT]),
                           resource=EventResourceFilter(id=[f"prefect.flow-run.{flow_run_id}"])),
        limit=1,
    )
    return page.events[0].occurred if page.events else None  # newest first


def _report_markdown(report: ReaperReport, dry_run: bool) -> str:
    verb = "Would destroy" if dry_run else "Destroyed"
    lines = ["# Sandbox reaper", "", f"{verb} {len(report.destroyed)}, kept {report.kept}.", ""]
    if report.destroyed:
        lines += ["| provider | sandbox | flow run | reason |", "|---|---|---|---|"]
        lines += [f"| {item.provider} | `{item.id[:24]}` | `{item.run_id}` | {item.reason} |" for item in report.destroyed]
    if report.errors:
        lines += ["", "## Errors", ""] + [f"- {error}" for error in report.errors]
    return "\n".join(lines)
