"""Retrying GitHub REST calls, and turning GitHub's refusals into clear errors.

PyGithub ships its own urllib3 retry (``GithubRetry``), which retries POSTs at
the transport level and sleeps with ``time.sleep``. We switch it off
(``retry=0`` on every client we build) and retry here instead, around whole
operations, because:

* a POST that timed out may still have succeeded (a PR was created, a comment
  posted). Only the caller knows how to check for that, so callers wrap
  *idempotent units* (look up, then create) rather than single POSTs;
* the waits must honour ``retry-after`` and ``x-ratelimit-reset`` exactly and be
  observable in tests, so the sleep and the clock are injectable.

What is retried: connection errors, timeouts, 5xx, and rate limits (primary:
403/429 with ``x-ratelimit-remaining: 0`` waits until ``x-ratelimit-reset``;
secondary: 403/429 with ``retry-after`` waits that long, or a minute when
GitHub gives no header). What is not: 401, 403 permission refusals, 404 and
422, which become :mod:`cloud_runs.github.errors` naming the missing permission
or the bad input.

Example:
    >>> policy = RetryPolicy(sleep=lambda s: None)
    >>> policy.call(lambda: 42, action="answer")
    42
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from cloud_runs.github.errors import (
    GitHubAuthenticationError,
    GitHubError,
    GitHubNotFoundError,
    GitHubPermissionError,
    GitHubRateLimitedError,
    GitHubUnavailableError,
    GitHubValidationError,
)

__all__ = ["RetryPolicy", "Transient", "classify", "translate"]

T = TypeVar("T")
logger = logging.getLogger(__name__)

# GitHub: "If you get a secondary rate limit without retry-after or
# x-ratelimit-reset, wait at least one minute before retrying."
SECONDARY_RATE_LIMIT_DEFAULT_WAIT = 60.0


@dataclass(frozen=True)
class Transient:
    """Why a failure is worth retrying, and how long GitHub asked us to wait (if it did)."""

    reason: str
    wait: float | None = None


def _headers(exc: BaseException) -> dict[str, str]:
    headers = getattr(exc, "headers", None) or {}
    return {str(k).lower(): str(v) for k, v in dict(headers).items()}


def _message(exc: BaseException) -> str:
    data = getattr(exc, "data", None)
    if isinstance(data, dict):
        message = data.get("message") or data.get("data") or ""
        return str(message).strip()[:300]
    return ""


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) else None


def classify(exc: BaseException, now: float) -> Transient | None:
    """Says whether ``exc`` is transient, and the wait GitHub asked for.

    Args:
        exc: An exception raised by PyGithub or requests.
        now: The current time (epoch seconds), for ``x-ratelimit-reset``.

    Returns:
        A :class:`Transient` for retryable failures, None for final ones.
    """
    import requests
    from github import GithubException

    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
        return Transient(f"connection failed ({type(exc).__name__})")
    if not isinstance(exc, GithubException):
        return None
    status = _status(exc)
    if status is None:
        return None
    if status >= 500:
        return Transient(f"GitHub answered {status}")
    if status in (403, 429):
        headers = _headers(exc)
        if "retry-after" in headers:
            try:
                return Transient("secondary rate limit", max(0.0, float(headers["retry-after"])))
            except ValueError:
                return Transient("secondary rate limit", SECONDARY_RATE_LIMIT_DEFAULT_WAIT)
        if headers.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in headers:
            try:
                reset = float(headers["x-ratelimit-reset"])
            except ValueError:
                reset = now + SECONDARY_RATE_LIMIT_DEFAULT_WAIT
            # One second past the reset: the reset is a whole second, clocks drift.
            return Transient("primary rate limit", max(0.0, reset - now) + 1.0)
        message = _message(exc).lower()
        if status == 429 or "rate limit" in message:
            return Transient("secondary rate limit", SECONDARY_RATE_LIMIT_DEFAULT_WAIT)
    return None


def _accepted_permissions(headers: dict[str, str]) -> str | None:
    # GitHub names the permissions an endpoint accepts on responses to App tokens,
    # e.g. "x-accepted-github-permissions: pull_requests=write; contents=read".
    value = headers.get("x-accepted-github-permissions")
    if not value:
        return None
    return value.replace("=", ": ")


def translate(exc: BaseException, *, action: str, permission: str | None = None) -> GitHubError:
    """Turns a final PyGithub/requests failure into a :class:`GitHubError` subclass.

    Args:
        exc: The failure.
        action: What we were doing, e.g. ``"open a pull request in acme/widgets"``.
        permission: The permission ``action`` needs (``"pull_requests: write"``),
            named in the error when GitHub does not say.
    """
    status = _status(exc)
    message = _message(exc)
    said = f": {message}" if message else ""
    headers = _headers(exc)
    if status is None:
        return GitHubUnavailableError(
            f"could not {action}: {type(exc).__name__}",
            hint="check the network path to the GitHub API and GITHUB_API_URL",
        )
    if status == 401:
        return GitHubAuthenticationError(
            f"GitHub rejected the credentials while trying to {action} (401{said})",
            hint="check GITHUB_APP_CLIENT_ID/GITHUB_APP_ID and that GITHUB_APP_PRIVATE_KEY is a current key of "
            "that App; an installation token may have expired or been revoked",
            status=status,
        )
    if status == 403:
        needed = _accepted_permissions(headers) or permission
        if "not accessible by integration" in message.lower() or needed:
            what = f"the '{needed}' permission" if needed else "a permission it was not granted"
            return GitHubPermissionError(
                f"GitHub refused to {action}: the App's token lacks {what} (403{said})",
                hint=f"grant the GitHub App {what} in its settings (Permissions & events), "
                "then accept the new permissions on the installation",
                permission=needed,
            )
        return GitHubPermissionError(f"GitHub refused to {action} (403{said})", hint="check the App's permissions")
    if status == 404:
        return GitHubNotFoundError(
            f"could not {action}: not found (404{said})",
            hint="check the repository name, and that the App is installed on it with access to this resource",
            status=status,
        )
    if status == 422:
        details = ""
        data = getattr(exc, "data", None)
        if isinstance(data, dict) and isinstance(data.get("errors"), list):
            parts = [str(e.get("message") or e.get("code") or e) if isinstance(e, dict) else str(e) for e in data["errors"]]
            details = "; " + "; ".join(parts)[:500]
        return GitHubValidationError(
            f"GitHub rejected the input to {action} (422{said}{details})",
            hint="correct the input named above",
            status=status,
        )
    if status == 429 or status >= 500:
        return GitHubUnavailableError(f"could not {action}: GitHub answered {status}{said}", status=status,
                                      hint="GitHub is failing or rate limiting; try again later")
    return GitHubError(f"could not {action}: GitHub answered {status}{said}", status=status)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded in attempts and in total waiting.

    Args:
        attempts: Most tries of one operation, the first included.
        initial_delay: Backoff before the second try; doubles each time.
        max_delay: Cap on one backoff (GitHub-requested waits are honoured
            up to ``max_total_wait`` instead).
        max_total_wait: Most seconds spent waiting across all retries of one
            operation; a rate-limit reset further away than this fails at once.
        jitter: Fraction of each backoff that is randomized, so that parallel
            runs do not retry in lockstep.
        sleep: Waits; injectable so tests record waits instead of sleeping.
        clock: Epoch seconds, to turn ``x-ratelimit-reset`` into a wait.

    Example:
        >>> waits = []
        >>> policy = RetryPolicy(sleep=waits.append, jitter=0)
    """

    attempts: int = 5
    initial_delay: float = 1.0
    max_delay: float = 30.0
    max_total_wait: float = 300.0
    jitter: float = 0.5
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    clock: Callable[[], float] = field(default=time.time, compare=False)
    random: Callable[[], float] = field(default=random.random, compare=False)

    def backoff(self, retry_number: int) -> float:
        """The wait before retry ``retry_number`` (1-based) when GitHub asked for none."""
        delay = min(self.max_delay, self.initial_delay * (2 ** (retry_number - 1)))
        return delay * (1 - self.jitter + self.jitter * self.random())

    def call(
        self,
        operation: Callable[[], T],
        *,
        action: str,
        permission: str | None = None,
    ) -> T:
        """Runs ``operation``, retrying transient failures.

        ``operation`` must be safe to repeat: wrap a look-up-then-create unit,
        not a bare POST.

        Args:
            operation: The work; called with no arguments.
            action: What it does, for errors ("open a pull request in acme/widgets").
            permission: The permission it needs, named when GitHub refuses it.

        Raises:
            GitHubError: A final failure, or transient ones beyond the budget.
        """
        waited = 0.0
        for attempt in range(1, max(1, self.attempts) + 1):
            try:
                return operation()
            except GitHubError:
                raise
            except Exception as exc:  # noqa: BLE001 - classified below
                transient = classify(exc, self.clock())
                if transient is None:
                    raise translate(exc, action=action, permission=permission) from exc
                wait = transient.wait if transient.wait is not None else self.backoff(attempt)
                rate_limited = "rate limit" in transient.reason
                if attempt >= self.attempts or waited + wait > self.max_total_wait:
                    if rate_limited:
                        raise GitHubRateLimitedError(
                            f"could not {action}: {transient.reason} (GitHub asked to wait {wait:.0f}s; "
                            f"already waited {waited:.0f}s over {attempt} attempts)",
                            hint="wait for the rate limit to reset, or spread runs out over time",
                            status=_status(exc),
                        ) from exc
                    raise GitHubUnavailableError(
                        f"could not {action} after {attempt} attempts: {transient.reason}",
                        hint="GitHub (or the network to it) is failing; try again later",
                        status=_status(exc),
                    ) from exc
                logger.warning(
                    "%s: %s; retrying in %.1fs (attempt %d of %d)", action, transient.reason, wait, attempt + 1,
                    self.attempts,
                )
                self.sleep(wait)
                waited += wait
        raise AssertionError("unreachable")  # pragma: no cover
