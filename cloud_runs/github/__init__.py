"""The GitHub side of a run: App authentication, git transport, publishing, pull requests.

Modules by concern:

* :mod:`~cloud_runs.github.keys` — loading the App's private key.
* :mod:`~cloud_runs.github.app` — JWTs, installations, repository-scoped tokens, PyGithub clients.
* :mod:`~cloud_runs.github.retry` — retries with backoff, rate limits, and clear errors.
* :mod:`~cloud_runs.github.git` — running ``git`` with a token only in its environment.
* :mod:`~cloud_runs.github.publish` — branch names and pushing the agent's bundle.
* :mod:`~cloud_runs.github.pulls` — idempotent pull requests and comments.
"""

from __future__ import annotations

from cloud_runs.github.app import GitHubAppAuth, GitIdentity, InstallationToken
from cloud_runs.github.errors import (
    AppNotInstalledError,
    BranchCollisionError,
    GitError,
    GitHubAuthenticationError,
    GitHubError,
    GitHubNotFoundError,
    GitHubPermissionError,
    GitHubRateLimitedError,
    GitHubUnavailableError,
    GitHubValidationError,
    NothingToPublishError,
    WorkflowPermissionError,
)
from cloud_runs.github.git import clone_argv, git_auth_env, run_git
from cloud_runs.github.keys import describe_key, key_fingerprint, load_private_key
from cloud_runs.github.publish import (
    DEFAULT_BRANCH_TEMPLATE,
    Publisher,
    PushResult,
    commit_identity_env,
    render_branch_name,
)
from cloud_runs.github.pulls import (
    PullRequestResult,
    comment_on_issue,
    open_or_update_pull_request,
    render_pull_request_body,
)
from cloud_runs.github.retry import RetryPolicy

__all__ = [
    "AppNotInstalledError",
    "BranchCollisionError",
    "DEFAULT_BRANCH_TEMPLATE",
    "GitError",
    "GitHubAppAuth",
    "GitHubAuthenticationError",
    "GitHubError",
    "GitHubNotFoundError",
    "GitHubPermissionError",
    "GitHubRateLimitedError",
    "GitHubUnavailableError",
    "GitHubValidationError",
    "GitIdentity",
    "InstallationToken",
    "NothingToPublishError",
    "Publisher",
    "PullRequestResult",
    "PushResult",
    "RetryPolicy",
    "WorkflowPermissionError",
    "clone_argv",
    "comment_on_issue",
    "commit_identity_env",
    "describe_key",
    "git_auth_env",
    "key_fingerprint",
    "load_private_key",
    "open_or_update_pull_request",
    "render_branch_name",
    "render_pull_request_body",
    "run_git",
]
