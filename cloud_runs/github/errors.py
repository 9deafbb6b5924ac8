"""Errors raised by the GitHub client side.

Each names what GitHub refused and how to fix it; none carries a token, a JWT
or key material (messages are built from status codes, GitHub's own error
message and names we chose, never from request headers).
"""

from __future__ import annotations

from cloud_runs.errors import CloudRunsError, InputError

__all__ = [
    "AppNotInstalledError",
    "BranchCollisionError",
    "GitError",
    "GitHubAuthenticationError",
    "GitHubError",
    "GitHubNotFoundError",
    "GitHubPermissionError",
    "GitHubRateLimitedError",
    "GitHubUnavailableError",
    "GitHubValidationError",
    "NothingToPublishError",
    "WorkflowPermissionError",
]


class GitHubError(CloudRunsError):
    """GitHub refused or failed a request.

    Attributes:
        status: The HTTP status, when there was a response.
    """

    def __init__(self, message: str, *, hint: str | None = None, status: int | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class GitHubAuthenticationError(GitHubError):
    """401: the JWT or token was rejected (wrong key or client id, expired or revoked token)."""


class GitHubPermissionError(GitHubError):
    """403: the App or token lacks a permission.

    Attributes:
        permission: The permission that was missing (``"pull_requests: write"``), when known.
    """

    def __init__(
        self, message: str, *, hint: str | None = None, status: int | None = 403, permission: str | None = None
    ) -> None:
        super().__init__(message, hint=hint, status=status)
        self.permission = permission


class WorkflowPermissionError(GitHubPermissionError):
    """A change to ``.github/workflows/`` needs the App's Workflows permission."""


class GitHubNotFoundError(GitHubError):
    """404: the resource does not exist or the token cannot see it."""


class AppNotInstalledError(GitHubNotFoundError):
    """The App has no installation that covers the repository."""


class GitHubValidationError(GitHubError, InputError):
    """422: GitHub rejected the input."""


class GitHubRateLimitedError(GitHubError):
    """A rate limit outlasted the retry budget."""


class GitHubUnavailableError(GitHubError):
    """Connection errors, timeouts or 5xx answers outlasted the retry budget."""


class GitError(CloudRunsError):
    """A git command failed; its stderr is included with secrets redacted."""

    def __init__(self, message: str, *, hint: str | None = None, stderr: str = "", returncode: int | None = None):
        super().__init__(message, hint=hint)
        self.stderr = stderr
        self.returncode = returncode


class BranchCollisionError(CloudRunsError):
    """The target branch exists with commits this run did not push."""


class NothingToPublishError(InputError):
    """The agent's work adds no commits on top of the base."""


class SecretInChangesError(CloudRunsError):
    """The agent's commits hold one of the run's secret values; they are not published."""
