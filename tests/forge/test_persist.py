"""A forge restarted on the same root keeps its repositories and records."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from cloud_runs.errors import InputError
from cloud_runs.forge import Forge
from tests.forge.support import make_world


def test_restart_on_the_same_root_keeps_everything(tmp_path: Path) -> None:
    with Forge(tmp_path) as forge:
        world = make_world(forge)
        token = world.token(repositories=["widgets"])
        number = forge.create_issue("acme/widgets", "Persist me", "b", user="alice", labels=["cloud-run"])
        world.github(token).get_repo("acme/widgets").get_issue(number).create_comment("saved")
        app = world.app
    state = tmp_path / "state.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert token not in state.read_text()

    with Forge(tmp_path) as again:
        assert again.issue_comments("acme/widgets", number)[0]["body"] == "saved"
        assert again.tokens[-1].repositories == ["widgets"]
        # The token minted before the restart still works; the App's key still signs valid JWTs.
        from tests.forge.support import World

        restored = World(again, app, world.installation_id)
        assert restored.github(token).get_repo("acme/widgets").get_issue(number).title == "Persist me"
        assert restored.integration().get_app().id == app.id
        assert again.create_issue("acme/widgets", "Next", "", user="alice") == number + 1


def test_orphan_repository_directory_is_reported(tmp_path: Path) -> None:
    (tmp_path / "repositories" / "acme" / "widgets.git").mkdir(parents=True)
    with Forge(tmp_path) as forge, pytest.raises(InputError, match="no record of it"):
        forge.create_repo("acme/widgets")

