"""Retry decisions and error translation, on PyGithub's and requests' real exception types."""

from __future__ import annotations

import pytest
import requests
from github import GithubException, RateLimitExceededException

from cloud_runs.github.errors import (
    GitHubAuthenticationError,
    GitHubNotFoundError,
    GitHubPermissionError,
    GitHubRateLimitedError,
    GitHubUnavailableError,
    GitHubValidationError,
)
from cloud_runs.github.retry import RetryPolicy, classify

NOW = 1_800_000_000.0


def failing(*failures, result="done"):
    """An operation that raises each of ``failures`` in turn, then returns ``result``."""
    remaining = list(failures)
    calls = []

    def operation():
        calls.append(1)
        if remaining:
            raise remaining.pop(0)
        return result

    operation.calls = calls
    return operation


def policy(waits, **kw) -> RetryPolicy:
    return RetryPolicy(sleep=waits.append, clock=lambda: NOW, jitter=0, **kw)


def test_classify_transient_and_final_failures():
    assert classify(requests.exceptions.ConnectionError("refused"), NOW).wait is None
    assert classify(requests.exceptions.ReadTimeout("slow"), NOW) is not None
    assert classify(GithubException(502, {"message": "Bad Gateway"}, {}), NOW).reason == "GitHub answered 502"
    secondary = GithubException(403, {"message": "You have exceeded a secondary rate limit"}, {"retry-after": "7"})
    assert classify(secondary, NOW).wait == 7
    primary = RateLimitExceededException(
        403, {"message": "API rate limit exceeded"},
        {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 42)},
    )
    assert classify(primary, NOW).wait == 43  # until the reset, plus a second
    assert classify(GithubException(429, {"message": "slow down"}, {}), NOW).wait == 60
    for final in (401, 404, 422):
        assert classify(GithubException(final, {"message": "x"}, {}), NOW) is None
    assert classify(GithubException(403, {"message": "Resource not accessible by integration"}, {}), NOW) is None
    assert classify(ValueError("bug"), NOW) is None


def test_backoff_is_exponential_capped_and_jittered():
    fixed = RetryPolicy(jitter=0, initial_delay=1, max_delay=5)
    assert [fixed.backoff(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]
    low = RetryPolicy(jitter=0.5, initial_delay=4, random=lambda: 0.0)
    high = RetryPolicy(jitter=0.5, initial_delay=4, random=lambda: 0.999)
    assert low.backoff(1) == 2.0 and 3.99 < high.backoff(1) < 4.0


def test_retries_until_success_with_the_waits_github_asked_for():
    waits = []
    operation = failing(
        GithubException(502, {"message": "Bad Gateway"}, {}),
        GithubException(403, {"message": "secondary"}, {"retry-after": "3"}),
        RateLimitExceededException(
            403, {"message": "API rate limit exceeded"},
            {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 10)},
        ),
        requests.exceptions.ConnectionError("reset"),
    )
    assert policy(waits, attempts=5).call(operation, action="do it") == "done"
    assert waits == [1.0, 3.0, 11.0, 8.0]  # backoff 1, retry-after 3, reset+1, backoff 2**3
    assert len(operation.calls) == 5


def test_gives_up_after_the_attempt_budget():
    waits = []
    operation = failing(*[GithubException(503, {"message": "unavailable"}, {})] * 5)
    with pytest.raises(GitHubUnavailableError) as caught:
        policy(waits, attempts=3).call(operation, action="list pulls")
    assert "after 3 attempts" in caught.value.message and caught.value.status == 503
    assert len(operation.calls) == 3 and waits == [1.0, 2.0]


def test_a_reset_beyond_the_wait_budget_fails_at_once():
    waits = []
    far = RateLimitExceededException(
        403, {"message": "API rate limit exceeded"},
        {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 3600)},
    )
    with pytest.raises(GitHubRateLimitedError) as caught:
        policy(waits, max_total_wait=300).call(failing(far), action="open a pull request")
    assert waits == [] and "3601s" in caught.value.message


@pytest.mark.parametrize(
    ("exc", "error", "words"),
    [
        (GithubException(401, {"message": "Bad credentials"}, {}), GitHubAuthenticationError, "rejected the credentials"),
        (
            GithubException(403, {"message": "Resource not accessible by integration"},
                            {"x-accepted-github-permissions": "pull_requests=write"}),
            GitHubPermissionError,
            "'pull_requests: write' permission",
        ),
        (GithubException(404, {"message": "Not Found"}, {}), GitHubNotFoundError, "not found"),
        (
            GithubException(422, {"message": "Validation Failed", "errors": [{"message": "head is invalid"}]}, {}),
            GitHubValidationError,
            "head is invalid",
        ),
    ],
)
def test_final_failures_are_not_retried_and_say_what_is_wrong(exc, error, words):
    waits = []
    operation = failing(exc)
    with pytest.raises(error) as caught:
        policy(waits).call(operation, action="open a pull request in acme/widgets")
    assert len(operation.calls) == 1 and waits == []
    assert words in caught.value.message and "acme/widgets" in caught.value.message
    assert caught.value.hint


def test_permission_named_by_the_caller_when_github_does_not_say():
    exc = GithubException(403, {"message": "Resource not accessible by integration"}, {})
    with pytest.raises(GitHubPermissionError) as caught:
        policy([]).call(failing(exc), action="comment on #3", permission="issues: write")
    assert caught.value.permission == "issues: write"
    assert "issues: write" in caught.value.hint
