"""A real `prefect server start` for the worker tests, and the fake Modal SDK."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

VENV_BIN = str(Path(sys.executable).parent)
SERVER_STARTUP_SECONDS = 120


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cli_env(api_url: str, home: Path) -> dict[str, str]:
    """Environment of `prefect` CLI calls against the test server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_API_URL=api_url,
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', os.defpath)}",
    )
    return env


def prefect_cli(*args: str, api_url: str, home: Path, cwd: Path | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(VENV_BIN) / "prefect"), *args], cwd=cwd, env=cli_env(api_url, home),
        capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """`prefect server start` on a free port with its own PREFECT_HOME; yields the API URL."""
    home = tmp_path_factory.mktemp("prefect-server-home")
    port = _free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    log = (home / "server.log").open("w")
    process = subprocess.Popen(
        [str(Path(VENV_BIN) / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=cli_env(api_url, home) | {"PREFECT_UI_ENABLED": "false"},
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + SERVER_STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"prefect server exited with {process.returncode}: {(home / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"prefect server not healthy after {SERVER_STARTUP_SECONDS} s")
            time.sleep(0.5)
        yield api_url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def cli_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("prefect-cli-home")
