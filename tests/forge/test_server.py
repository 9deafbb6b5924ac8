"""Fault injection, rate-limit headers and request records."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from github import Github, GithubException, GithubRetry, RateLimitExceededException
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import ReadTimeout

from tests.forge.support import NO_THROTTLE, World, clone, git, git_env

PULLS = r"/api/v3/repos/[^/]+/[^/]+/pulls$"


@pytest.fixture(scope="module")
def token(world: World) -> str:
    return world.token(repositories=["widgets"])


def test_every_rest_response_carries_rate_limit_headers(world: World, token: str) -> None:
    gh = world.github(token)
    for path in ("/repos/acme/widgets", "/repos/acme/widgets/pulls/999"):
        status, headers, _ = gh.requester.requestJson("GET", path)
        assert headers["content-type"] == "application/json; charset=utf-8"
        for name in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-used", "x-ratelimit-reset"):
            assert headers[name].isdigit(), name
        assert headers["x-ratelimit-resource"] == "core"
    assert status == 404
    gh.get_repo("acme/widgets")  # PyGithub reads the headers after each call
    left, limit = gh.rate_limiting
    assert limit == 5000 and left <= 5000 - 3


def test_502_then_recovery_with_pygithub_retry(world: World, token: str) -> None:
    world.forge.inject("GET", PULLS, "502")
    with pytest.raises(GithubException) as caught:
        list(world.github(token).get_repo("acme/widgets").get_pulls())
    assert caught.value.status == 502
    world.forge.inject("GET", PULLS, "502", count=2)
    retrying = Github(auth=world.github(token).requester.auth, base_url=world.forge.api_url,
                      retry=GithubRetry(total=3, backoff_factor=0), **NO_THROTTLE)  # fmt: skip
    assert list(retrying.get_repo("acme/widgets").get_pulls()) == []
    statuses = [r.status for r in world.forge.requests if r.path.endswith("/pulls")][-3:]
    assert statuses == [502, 502, 200]


def test_secondary_rate_limit_has_retry_after_and_pygithub_waits(world: World, token: str) -> None:
    world.forge.inject("POST", r"/issues/\d+/comments$", "secondary_rate_limit")
    number = world.forge.create_issue("acme/widgets", "Rate", "", user="eve")
    gh = world.github(token)
    status, headers, body = gh.requester.requestJson(
        "POST", f"/repos/acme/widgets/issues/{number}/comments", input={"body": "x"}
    )
    assert status == 403 and headers["retry-after"] == "1"
    assert "secondary rate limit" in body
    world.forge.inject("POST", r"/issues/\d+/comments$", "secondary_rate_limit")
    started = time.monotonic()
    patient = world.github(token, retry=GithubRetry(secondary_rate_wait=1))
    patient.get_repo("acme/widgets").get_issue(number).create_comment("after waiting")
    assert time.monotonic() - started >= 1
    assert [c["body"] for c in world.forge.issue_comments("acme/widgets", number)] == ["after waiting"]


def test_primary_rate_limit(world: World, token: str) -> None:
    world.forge.inject("GET", r"/repos/acme/widgets$", "primary_rate_limit", seconds=30)
    with pytest.raises(RateLimitExceededException) as caught:
        world.github(token).get_repo("acme/widgets")
    assert caught.value.headers["x-ratelimit-remaining"] == "0"
    reset = int(caught.value.headers["x-ratelimit-reset"])
    assert world.forge.now() < reset <= world.forge.now() + 31


def test_delay_and_timeout(world: World, token: str) -> None:
    world.forge.inject("GET", r"/repos/acme/widgets$", "delay", seconds=0.4)
    started = time.monotonic()
    world.github(token).get_repo("acme/widgets")
    assert time.monotonic() - started >= 0.4
    world.forge.inject("GET", r"/repos/acme/widgets$", "timeout", seconds=2)
    impatient = Github(auth=world.github(token).requester.auth, base_url=world.forge.api_url, timeout=1, retry=0,
                       **NO_THROTTLE)  # fmt: skip
    with pytest.raises((ReadTimeout, RequestsConnectionError)):
        impatient.get_repo("acme/widgets")


def test_faults_apply_to_git_too(world: World, token: str, tmp_path: Path) -> None:
    world.forge.inject("GET", r"/acme/widgets\.git/info/refs$", "502")
    env = git_env(world.forge, token)
    failed = git("clone", f"{world.forge.url}/acme/widgets.git", str(tmp_path / "a"), cwd=tmp_path, env=env, check=False)
    assert failed.returncode != 0 and "502" in failed.stderr
    clone(world.forge, "acme/widgets", tmp_path / "b", token)
    faulted = [r for r in world.forge.requests if r.fault == "502" and r.path.endswith("/info/refs")]
    assert faulted and faulted[-1].status == 502


def test_inject_rejects_unknown_faults(world: World) -> None:
    from cloud_runs.errors import InputError

    with pytest.raises(InputError, match="unknown fault"):
        world.forge.inject("GET", ".*", "500")
    with pytest.raises(InputError, match="not a regular expression"):
        world.forge.inject("GET", "(", "502")
