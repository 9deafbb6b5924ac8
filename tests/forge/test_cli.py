"""``cloud-runs forge serve`` serves until interrupted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path


def test_serve_prints_url_answers_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "cloud_runs.cli", "forge", "serve", "--root", str(tmp_path), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("forge serving at http://127.0.0.1:"), line
        url = line.split()[3]
        try:
            urllib.request.urlopen(f"{url}/api/v3/users/nobody", timeout=10)
        except urllib.error.HTTPError as e:
            assert e.code == 404
            assert json.loads(e.read())["message"] == "Not Found"
        else:
            raise AssertionError("expected a 404")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    assert (tmp_path / "repositories").is_dir()


def test_serve_refuses_a_bad_port(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cloud_runs.cli", "forge", "serve", "--root", str(tmp_path), "--port", "70000"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--port 70000" in result.stderr and "fix:" in result.stderr
