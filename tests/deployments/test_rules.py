"""The decisions behind deploy and the reaper, without a server."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from cloud_runs.deploy import DEFAULT_FILE, POOL_TYPES, Pool, plan_pools, pools_of
from cloud_runs.errors import InputError
from cloud_runs.sandboxes.base import EXPIRES_AT_LABEL, RUN_ID_LABEL, SandboxRef
from flows.sandbox_reaper import SILENT, reap_reason


def test_prefect_yaml_names_the_three_pools():
    assert pools_of(DEFAULT_FILE) == ["docker", "modal", "local"]
    assert plan_pools(pools_of(DEFAULT_FILE), POOL_TYPES, {"docker": 3}) == [
        Pool("docker", "docker", 3), Pool("modal", "modal"), Pool("local", "process")]


def test_unknown_pool_type_and_stray_limit_fail_before_anything_is_created():
    with pytest.raises(InputError, match="no work pool type known for gpu") as error:
        plan_pools(["gpu"], POOL_TYPES, {})
    assert "--pool-type" in error.value.hint
    with pytest.raises(InputError, match="--pool-limit names nope"):
        plan_pools(["docker"], POOL_TYPES, {"nope": 1})
    assert plan_pools(["docker", "modal"], POOL_TYPES, {}, skip=["modal"]) == [Pool("docker", "docker")]


def _ref(expires_in: float) -> SandboxRef:
    expires = datetime.now(timezone.utc) + timedelta(seconds=expires_in)
    return SandboxRef("docker", "c1", {RUN_ID_LABEL: "run-1", EXPIRES_AT_LABEL: expires.isoformat()})


@pytest.mark.parametrize(("state", "expires_in", "reaped"), [
    ("RUNNING", 600, None),
    ("PENDING", 600, None),
    ("SCHEDULED", 600, None),
    ("PAUSED", 600, None),
    ("RUNNING", -1, "lifetime ended"),
    (SILENT, 600, "no heartbeats"),
    (None, 600, "unknown (orphan)"),
    ("COMPLETED", 600, "is completed"),
    ("CRASHED", 600, "is crashed"),
    ("CANCELLED", 600, "is cancelled"),
    ("FAILED", 600, "is failed"),
])
def test_reap_reason(state, expires_in, reaped):
    reason = reap_reason(_ref(expires_in), state)
    assert reason is None if reaped is None else reaped in reason
