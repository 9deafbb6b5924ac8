"""The GitHub App a run authenticates as."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from cloud_runs.settings import PUBLIC_GITHUB_API_URL, Settings

if TYPE_CHECKING:
    from github import Github

    from cloud_runs.github.app import GitHubAppAuth


class GitHubApp(Block):
    """A GitHub App installation's credentials; the orchestrator's, never the sandbox's.

    Attributes:
        client_id: The App's Client ID (JWT issuer).
        app_id: The numeric App ID; GitHub Enterprise Server 3.13 and older need it as issuer.
        slug: The App's slug; names the bot that authors commits.
        private_key: The App's PEM private key.
        api_url: REST API root (github.com, an Enterprise Server, or the local forge).

    Example:
        ```python
        from blocks import GitHubApp

        app = GitHubApp.load("default")
        token = app.get_auth().token("acme/widgets", {"contents": "read"})
        ```
    """

    _block_type_name = "GitHub App"
    _block_type_slug = "cloud-runs-github-app"
    _logo_url = "https://github.githubassets.com/images/modules/logos_page/GitHub-Mark.png"
    _description = "A GitHub App that Cloud Runs authenticates as to clone, push and open pull requests."

    client_id: str = Field(description="The App's Client ID (Iv1... / Iv23...).")
    app_id: str | None = Field(default=None, description="Numeric App ID; only GitHub Enterprise Server 3.13 and older need it.")
    slug: str = Field(description="The App's slug: github.com/apps/<slug>.")
    private_key: SecretStr = Field(description="The App's PEM private key.")
    api_url: str = Field(default=PUBLIC_GITHUB_API_URL, description="REST API root URL.")
    seconds_between_requests: float | None = Field(
        default=0.25, ge=0, description="Pause between API requests (GitHub's guidance against secondary rate limits)."
    )
    seconds_between_writes: float | None = Field(
        default=1.0, ge=0, description="Pause between API writes (GitHub's guidance against secondary rate limits)."
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> GitHubApp:
        """Builds the block from `.env` / environment settings."""
        return cls(
            client_id=settings.github_app_client_id,
            app_id=settings.github_app_id or None,
            slug=settings.github_app_slug,
            private_key=SecretStr(settings.github_app_private_key),
            api_url=settings.github_api_url,
        )

    def get_auth(self, **options: object) -> GitHubAppAuth:
        """The App's authenticator: JWTs, scoped installation tokens, revocation."""
        from cloud_runs.github.app import GitHubAppAuth

        return GitHubAppAuth(
            client_id=self.client_id,
            app_id=self.app_id,
            slug=self.slug,
            private_key=self.private_key.get_secret_value(),
            api_url=self.api_url,
            seconds_between_requests=self.seconds_between_requests,
            seconds_between_writes=self.seconds_between_writes,
            **options,
        )

    def get_client(self, repository: str, permissions: Mapping[str, str]) -> Github:
        """A PyGithub client acting through a token scoped to one repository.

        For one-off use: the token expires within the hour. Code that must revoke
        its tokens keeps the authenticator (:meth:`get_auth`) and calls ``revoke_all``.
        """
        return self.get_auth().client(repository, permissions)
