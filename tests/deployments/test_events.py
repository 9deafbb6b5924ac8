"""The PR-opened event reaches the server with the pull request's URL in its payload."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from flows.reporting import PR_OPENED_EVENT
from tests.deployments.conftest import BLOCK, SANDBOX_BLOCK, SCRIPTED_FIX, flow_run_id_from, run_params, wait_for_final

pytestmark = pytest.mark.prefect_server


def _events(name: str, resource_id: str):
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter

    since = datetime.now(timezone.utc) - timedelta(hours=1)
    with get_client(sync_client=True) as client:
        return client.read_events(filter=EventFilter(occurred=EventOccurredFilter(since=since),
                                                     event=EventNameFilter(name=[name]),
                                                     resource=EventResourceFilter(id=[resource_id])), limit=50).events


def test_pull_request_opened_event_carries_the_url(prefect_server, world, local_worker):
    repository, issue = world.new_repository("events")
    started = prefect_server.cli("deployment", "run", "cloud-run/local", *run_params(
        repository=repository, issue=issue, agent=SCRIPTED_FIX, sandbox=f"local/{SANDBOX_BLOCK}",
        github_app=BLOCK, agent_credentials=BLOCK))
    flow_run_id = flow_run_id_from(started.stdout)
    assert wait_for_final(flow_run_id, timeout=240, worker=local_worker).state.is_completed()
    [pull] = world.forge.pulls(repository)
    deadline = time.monotonic() + 30  # the server persists events asynchronously
    while not (events := _events(PR_OPENED_EVENT, f"cloud-runs.repository.{repository}")):
        assert time.monotonic() < deadline, f"no {PR_OPENED_EVENT} event for {repository}"
        time.sleep(0.5)
    [event] = events
    assert event.payload["pull_request_url"] == f"{world.forge.url}/{repository}/pull/{pull['number']}"
    assert event.payload["pull_request_number"] == pull["number"]
    assert event.payload["status"] == "pr_opened"
    # The event is tied to the flow run that emitted it, so automations can link back.
    assert f"prefect.flow-run.{flow_run_id}" in {related.id for related in event.related}
