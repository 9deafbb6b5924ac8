"""The forge's Python API: setup calls validate their input and say how to fix it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from cloud_runs.errors import InputError
from cloud_runs.forge import Forge


def test_setup_calls_reject_bad_input_before_any_change(tmp_path: Path) -> None:
    with Forge(tmp_path) as forge:
        app = forge.create_app(slug="cloud-runs-dev", owner="acme")
        forge.create_repo("acme/widgets")
        cases = [
            (lambda: forge.create_repo("no-slash"), "invalid repository name"),
            (lambda: forge.create_repo("acme/widgets"), "exists"),
            (lambda: forge.create_app(slug="cloud-runs-dev"), "slug"),
            (lambda: forge.create_app(slug="other", permissions={"contents": "root"}), "not a level"),
            (lambda: forge.install_app(999, owner="acme"), "no app with id 999"),
            (lambda: forge.install_app(app.id, owner="acme", repositories=["nope"]), "no repository acme/nope"),
            (lambda: forge.install_app(app.id, owner="acme", permissions={"workflows": "write"}), "exceeds"),
            (lambda: forge.add_collaborator("acme/widgets", "alice", permission="owner"), "invalid permission"),
            (lambda: forge.create_issue("acme/missing", "t"), "no repository acme/missing"),
            (lambda: forge.advance_clock(-1), "move the clock back"),
            (lambda: forge.create_user("bad login!"), "invalid login"),
        ]
        for call, words in cases:
            with pytest.raises(InputError, match=words) as caught:
                call()
            assert caught.value.hint
        assert forge.pulls("acme/widgets") == [] and len(forge._installations) == 0


def test_clock_moves_forward_only_by_request(tmp_path: Path) -> None:
    with Forge(tmp_path) as forge:
        before = forge.now()
        forge.advance_clock(7200)
        assert forge.now() - before >= 7200


def test_wait_returns_when_stopped_or_on_timeout(tmp_path: Path) -> None:
    forge = Forge(tmp_path).start()
    assert forge.wait(timeout=0.1) is False
    threading.Timer(0.2, forge.stop).start()
    assert forge.wait(timeout=10) is True


def test_url_needs_a_started_forge(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="start"):
        Forge(tmp_path).url
