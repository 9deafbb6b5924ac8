"""A seeded forge and the blocks that point at it, shared by the flow tests."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from pydantic import SecretStr

from blocks import AgentCredentials, DockerSandboxBlock, GitHubApp, LocalSandboxBlock
from cloud_runs.demo import ISSUE_BODY, ISSUE_TITLE, STATS_PY, TEST_STATS_PY
from cloud_runs.forge import Forge

#: A model key the tests give the agent: it must never show up anywhere but the agent's environment.
MODEL_KEY = "sk-ant-test-0123456789abcdefSECRET"
_names = itertools.count(1)


@dataclass
class World:
    forge: Forge
    app: object

    def new_repository(self, *, issue: bool = True) -> tuple[str, int | None]:
        """A fresh copy of the demo repository (and its issue), so tests never share branches."""
        name = f"acme/stats-{next(_names)}"
        self.forge.create_repo(name, files={"stats.py": STATS_PY, "test_stats.py": TEST_STATS_PY}, default_branch="main")
        number = self.forge.create_issue(name, ISSUE_TITLE, ISSUE_BODY, user="maria") if issue else None
        return name, number


@pytest.fixture(scope="module")
def world(tmp_path_factory, prefect_api) -> World:
    forge = Forge(tmp_path_factory.mktemp("forge")).start()
    app = forge.create_app(slug="cloud-runs-test", owner="acme",
                           permissions={"contents": "write", "pull_requests": "write", "issues": "write",
                                        "metadata": "read"})
    forge.create_user("maria")
    forge.install_app(app.id, owner="acme")
    GitHubApp(client_id=app.client_id, slug=app.slug, private_key=SecretStr(app.private_key_pem),
              api_url=forge.api_url, seconds_between_requests=None, seconds_between_writes=None).save(
        "test", overwrite=True)
    AgentCredentials(anthropic_api_key=SecretStr(MODEL_KEY)).save("test", overwrite=True)
    LocalSandboxBlock(lifetime_seconds=900).save("test", overwrite=True)
    # Host networking: the container must reach the forge on 127.0.0.1.
    DockerSandboxBlock(network_mode="host", lifetime_seconds=900).save("test", overwrite=True)
    yield World(forge=forge, app=app)
    forge.stop()
