"""Fixtures for the forge tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cloud_runs.forge import Forge
from tests.forge.support import World, make_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A forge shared by one test module (tests that move the clock use ``fresh_world``)."""
    with Forge(tmp_path_factory.mktemp("forge")) as forge:
        yield make_world(forge)


@pytest.fixture
def fresh_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A forge of the test's own."""
    with Forge(tmp_path_factory.mktemp("forge")) as forge:
        yield make_world(forge)


@pytest.fixture(scope="session")
def github_openapi() -> "OpenApi":
    """GitHub's REST OpenAPI description (npm @octokit/openapi, cached under ~/.cache/cloud-runs/openapi/)."""
    from tests.forge.openapi import OpenApi

    return OpenApi.load()
