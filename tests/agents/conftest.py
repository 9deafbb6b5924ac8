"""Fixtures for agent tests: local sandboxes with a real git repository, stand-in
agent executables, and the sandbox image for Docker tests.

A stand-in is a small program installed under the real CLI's name (``claude``,
``codex``, ``node``) on the sandbox's PATH. It records what it received (argv,
environment, cwd, stdin, the prompt file it was pointed at) to a file and
replays a recorded-format output stream from ``tests/agents/fixtures``, with
``{SECRET}`` replaced by the model key it was given, so tests can prove the key
is redacted everywhere.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cloud_runs.sandboxes import LocalSandbox, LocalSandboxSettings

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
FIXTURES = Path(__file__).parent / "fixtures"
SANDBOX_IMAGE = "cloud-runs-sandbox:latest"
REPO_DIR = "/workspace/repo"
STANDIN_DIR = "/tmp/cloud-runs/standin"
RECORD_PATH = f"{STANDIN_DIR}/record.json"
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"

# The stand-in itself (stdlib Python; records, then replays).
STANDIN_SOURCE = r'''#!/usr/bin/env python3
import base64, json, os, sys, time
args = sys.argv[1:]
prompt_file = None
if "--prompt-file" in args:
    prompt_file = args[args.index("--prompt-file") + 1]
record = {
    "program": os.path.basename(sys.argv[0]),
    "argv": args,
    "cwd": os.getcwd(),
    "env": dict(os.environ),
    "pid": os.getpid(),
    "stdin_b64": base64.b64encode(sys.stdin.buffer.read()).decode(),
    "prompt_file_b64": base64.b64encode(open(prompt_file, "rb").read()).decode() if prompt_file else None,
}
with open(os.environ["STANDIN_RECORD"], "w") as handle:
    json.dump(record, handle)
secret = os.environ.get(os.environ.get("STANDIN_SECRET_VAR", "ANTHROPIC_API_KEY"), "")
replay = os.environ.get("STANDIN_REPLAY")
if replay:
    for line in open(replay, encoding="utf-8"):
        sys.stdout.write(line.replace("{SECRET}", secret))
        sys.stdout.flush()
if os.environ.get("STANDIN_STDERR"):
    sys.stderr.write(os.environ["STANDIN_STDERR"].replace("{SECRET}", secret) + "\n")
time.sleep(float(os.environ.get("STANDIN_SLEEP", "0")))
sys.exit(int(os.environ.get("STANDIN_EXIT", "0")))
'''


@dataclass
class StandIn:
    """A stand-in CLI installed in a sandbox; :meth:`record` reads what it received."""

    sandbox: LocalSandbox
    program: str

    def env(self, fixture: str | None = None, **extra: str) -> dict[str, str]:
        """Non-secret environment for a task that runs the stand-in."""
        env = {"PATH": f"{STANDIN_DIR}/bin:{SYSTEM_PATH}", "STANDIN_RECORD": RECORD_PATH}
        if fixture:
            path = f"{STANDIN_DIR}/{fixture}"
            self.sandbox.write_file(path, (FIXTURES / fixture).read_bytes())
            env["STANDIN_REPLAY"] = path
        env.update(extra)
        return env

    def record(self) -> dict:
        data = json.loads(self.sandbox.read_file(RECORD_PATH))
        root = str(self.sandbox.root)
        # Paths the local sandbox mapped under its root, as the agent would see them elsewhere.
        data["argv"] = [a.replace(root, "") for a in data["argv"]]
        data["cwd"] = data["cwd"].replace(root, "")
        data["stdin"] = base64.b64decode(data.pop("stdin_b64"))
        encoded = data.pop("prompt_file_b64")
        data["prompt_file"] = base64.b64decode(encoded) if encoded is not None else None
        return data


@pytest.fixture
def local_sandbox() -> Iterator[LocalSandbox]:
    sandbox = LocalSandboxSettings(lifetime_seconds=600).create(run_id="agents-test")
    try:
        yield sandbox
    finally:
        sandbox.destroy()


def git(sandbox, *args: str, cwd: str = REPO_DIR) -> str:
    """Runs real git in the sandbox and returns its stdout (fails the test on error)."""
    lines: list[str] = []
    result = sandbox.exec(
        ["git", *args],
        cwd=cwd,
        env={"GIT_AUTHOR_NAME": "Seed", "GIT_AUTHOR_EMAIL": "seed@example.com", "GIT_COMMITTER_NAME": "Seed",
             "GIT_COMMITTER_EMAIL": "seed@example.com", "GIT_CONFIG_NOSYSTEM": "1"},
        timeout=60,
        on_output=lambda stream, line: lines.append(line) if stream == "stdout" else None,
    )
    assert result.exit_code == 0, f"git {' '.join(args)} failed: {lines}"
    return "\n".join(lines)


SEED_FILES = {
    "calc.py": "def add(a, b):\n    return a - b\n",
    "test_calc.py": (
        "import unittest\n\nfrom calc import add\n\n\nclass CalcTest(unittest.TestCase):\n"
        "    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n\n\nif __name__ == '__main__':\n"
        "    unittest.main()\n"
    ),
    "README.md": "# calc\n",
    "old_name.txt": "rename me\n",
    "obsolete.txt": "delete me\n",
    "tool.sh": "#!/bin/sh\necho tool\n",
}


def seed_repo(sandbox) -> str:
    """A real git repository at /workspace/repo with one commit; returns its HEAD."""
    sandbox.exec(["mkdir", "-p", REPO_DIR], cwd="/workspace", timeout=30)
    git(sandbox, "init", "-q", "-b", "main", REPO_DIR, cwd="/workspace")
    for name, text in SEED_FILES.items():
        sandbox.write_file(f"{REPO_DIR}/{name}", text.encode())
    git(sandbox, "add", "-A")
    git(sandbox, "commit", "-q", "-m", "seed")
    return git(sandbox, "rev-parse", "HEAD").strip()


@pytest.fixture
def repo_sandbox(local_sandbox: LocalSandbox) -> LocalSandbox:
    """A local sandbox holding a seeded git repository at /workspace/repo."""
    seed_repo(local_sandbox)
    return local_sandbox


def install_standin(sandbox: LocalSandbox, program: str) -> StandIn:
    sandbox.write_file(f"{STANDIN_DIR}/bin/{program}", STANDIN_SOURCE.encode(), mode=0o755)
    return StandIn(sandbox, program)


def files_containing(root: Path, needle: str) -> list[str]:
    """Files under ``root`` whose bytes contain ``needle``."""
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and needle.encode() in path.read_bytes():
            found.append(str(path))
    return found


@pytest.fixture(scope="session")
def sandbox_image() -> str:
    """The sandbox image must exist for Docker agent tests: skip locally, fail in CI."""
    done = subprocess.run(["docker", "image", "inspect", SANDBOX_IMAGE], capture_output=True, timeout=30)
    if done.returncode != 0:
        message = f"image {SANDBOX_IMAGE} is not built (build it with the sandbox image build step)"
        if IN_CI:
            pytest.fail(f"{message}; CI must not skip Docker tests")
        pytest.skip(message)
    return SANDBOX_IMAGE
