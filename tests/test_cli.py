"""The README's front door: `cloud-runs demo` and the fail-fast paths of the CLI."""

from __future__ import annotations

import os
import subprocess
import sys

CLI = [sys.executable, "-m", "cloud_runs.cli"]


def test_demo_runs_the_whole_path_and_prints_the_pull_request(prefect_api, tmp_path):
    out = subprocess.run([*CLI, "demo", "--sandbox", "local"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=600, env={**os.environ, "PREFECT_API_URL": prefect_api})

    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "status:        pr_opened" in out.stdout
    assert "stats.py | 2 +-" in out.stdout
    assert "pull request:  http://127.0.0.1:" in out.stdout


def test_run_refuses_a_bad_repository_before_starting_anything(tmp_path):
    out = subprocess.run([*CLI, "run", "--repository", "acme/../../etc", "--prompt", "x"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60, env={**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api"})

    assert out.returncode == 2
    assert "is not a GitHub repository name" in out.stderr and "fix:" in out.stderr


def test_help_does_not_import_prefect_docker_or_modal():
    code = "import sys; from cloud_runs import cli; cli.build_parser(); print(sorted({'prefect', 'docker', 'modal'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]"
