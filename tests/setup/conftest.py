"""Fixtures for the set-up tests: a forge, and a way to run `cloud-runs app create` against it."""

from __future__ import annotations

import argparse
import io
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cloud_runs.forge import Forge
from cloud_runs.setup import app_create


@pytest.fixture(scope="module")
def forge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Forge]:
    with Forge(tmp_path_factory.mktemp("forge")) as forge:
        forge.create_user("acme", "Organization")
        yield forge


def parse_app_create(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cloud-runs app create")
    app_create.add_arguments(parser)
    return parser.parse_args(argv)


@dataclass
class Running:
    """``cloud-runs app create`` running in a thread: its local URL, output and outcome."""

    url: str
    thread: threading.Thread
    out: io.StringIO
    outcome: dict = field(default_factory=dict)

    def finish(self, timeout: float = 60) -> app_create.AppCreateResult:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "app create did not finish"
        if "error" in self.outcome:
            raise self.outcome["error"]
        return self.outcome["result"]


def start_app_create(argv: list[str]) -> Running:
    args = parse_app_create([*argv, "--no-browser", "--timeout", "60"])
    ready: queue.Queue[str] = queue.Queue()
    out = io.StringIO()
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["result"] = app_create.run(args, on_ready=ready.put, out=out)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            outcome["error"] = e
            ready.put("")

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    url = ready.get(timeout=30)
    running = Running(url, thread, out, outcome)
    if not url:
        running.finish()
    return running


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    path = tmp_path / ".env"
    path.write_text("# my settings\nSANDBOX_PROVIDER=docker\nGITHUB_APP_SLUG=\nCLOUD_RUNS_AGENT=scripted\n")
    return path
