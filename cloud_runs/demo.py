"""`cloud-runs demo`: the whole path on this machine with nothing configured.

A local forge stands in for GitHub with a seeded repository holding a real,
small bug and a failing test, and an issue describing it. A generated GitHub
App is installed there. The blocks are registered against the configured
Prefect API (the embedded one by default), and ``cloud_run`` runs with the
scripted agent in a Docker sandbox when an engine and the sandbox image are
there, or a local sandbox otherwise. It prints the pull request, its diffstat,
and where to see the run.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

DEMO_REPOSITORY = "acme/stats"
DEMO_BLOCK = "demo"

STATS_PY = '''"""Small statistics helpers."""


def mean(values):
    """Arithmetic mean of a non-empty sequence of numbers."""
    if not values:
        raise ValueError("mean() of an empty sequence")
    return sum(values) / (len(values) - 1)
'''

TEST_STATS_PY = '''import unittest

from stats import mean


class MeanTest(unittest.TestCase):
    def test_mean_of_three(self):
        self.assertEqual(mean([1, 2, 3]), 2)

    def test_empty_is_an_error(self):
        with self.assertRaises(ValueError):
            mean([])


if __name__ == "__main__":
    unittest.main()
'''

ISSUE_TITLE = "mean() returns the wrong value"
ISSUE_BODY = "`mean([1, 2, 3])` returns 3.0 instead of 2. `python3 -m unittest` fails in `test_mean_of_three`."

#: What the scripted agent does: fix the off-by-one, prove it with the tests.
FIX_STEPS = [
    {"action": "edit", "path": "stats.py", "old": "/ (len(values) - 1)", "new": "/ len(values)"},
    {"action": "run", "argv": ["python3", "-m", "unittest", "-v"]},
    {"action": "say", "text": "Fixed the off-by-one in mean(): it divided by len(values) - 1. The tests pass."},
]


@dataclass
class DemoOutcome:
    result: object
    forge_url: str
    sandbox: str


def _docker_sandbox_available(image: str) -> str | None:
    """None when the Docker sandbox can be used, else the reason it cannot."""
    if shutil.which("docker") is None:
        return "no docker client"
    try:
        if subprocess.run(["docker", "info"], capture_output=True, timeout=15).returncode != 0:
            return "no Docker engine answers (scripts/docker-engine start)"
        if subprocess.run(["docker", "image", "inspect", image], capture_output=True, timeout=15).returncode != 0:
            return f"image {image} is not built (scripts/build-images)"
    except (OSError, subprocess.TimeoutExpired):
        return "the Docker engine does not answer"
    return None


def seed_forge(forge):  # noqa: ANN001, ANN201 - a cloud_runs.forge.Forge
    """Creates the demo App, repository, installation and issue on ``forge``."""
    app = forge.create_app(
        slug="cloud-runs-demo", name="Cloud Runs Demo", owner="acme",
        permissions={"contents": "write", "pull_requests": "write", "issues": "write", "metadata": "read"},
    )
    forge.create_user("maria")
    forge.create_repo(DEMO_REPOSITORY, files={"stats.py": STATS_PY, "test_stats.py": TEST_STATS_PY,
                                              "README.md": "# stats\n\nSmall statistics helpers.\n"},
                      default_branch="main", private=True, description="Cloud Runs demo repository")
    forge.add_collaborator(DEMO_REPOSITORY, "maria", permission="write")
    forge.install_app(app.id, owner="acme")
    issue = forge.create_issue(DEMO_REPOSITORY, ISSUE_TITLE, ISSUE_BODY, user="maria", labels=["bug"])
    return app, issue


def save_demo_blocks(app, forge_api_url: str, sandbox: str) -> str:  # noqa: ANN001
    """Registers the demo's blocks; returns the sandbox reference for the flow."""
    from pydantic import SecretStr

    from blocks import AgentCredentials, DockerSandboxBlock, GitHubApp, LocalSandboxBlock

    GitHubApp(client_id=app.client_id, app_id=str(app.id), slug=app.slug,
              private_key=SecretStr(app.private_key_pem), api_url=forge_api_url,
              # The forge has no secondary rate limits to pace for.
              seconds_between_requests=None, seconds_between_writes=None).save(DEMO_BLOCK, overwrite=True)
    AgentCredentials().save(DEMO_BLOCK, overwrite=True)
    if sandbox == "docker":
        # Host networking: the sandbox must reach the forge on 127.0.0.1.
        DockerSandboxBlock(network_mode="host", lifetime_seconds=1200).save(DEMO_BLOCK, overwrite=True)
    else:
        LocalSandboxBlock(lifetime_seconds=1200).save(DEMO_BLOCK, overwrite=True)
    return f"{sandbox}/{DEMO_BLOCK}"


def run_demo(*, sandbox: str | None = None, keep: bool = False) -> DemoOutcome:
    from cloud_runs.agents import ScriptedAgent
    from cloud_runs.forge import Forge
    from cloud_runs.settings import load_settings
    from flows.cloud_run import cloud_run

    image = load_settings().sandbox_image
    if sandbox is None:
        reason = _docker_sandbox_available(image)
        sandbox = "docker" if reason is None else "local"
        if reason:
            print(f"demo: using the local sandbox (isolates nothing) because {reason}")
    root = Path(tempfile.mkdtemp(prefix="cloud-runs-demo-"))
    forge = Forge(root).start()
    try:
        print(f"demo: local forge at {forge.url} (stand-in for GitHub), repository {DEMO_REPOSITORY}")
        app, issue = seed_forge(forge)
        reference = save_demo_blocks(app, forge.api_url, sandbox)
        print(f"demo: issue #{issue} \"{ISSUE_TITLE}\"; running cloud_run with the scripted agent in a {sandbox} sandbox")
        result = cloud_run(repository=DEMO_REPOSITORY, issue=issue, agent=ScriptedAgent(steps=FIX_STEPS),
                           sandbox=reference, github_app=DEMO_BLOCK, agent_credentials=DEMO_BLOCK,
                           labels=["cloud-runs"], agent_timeout_seconds=600)
        _report(result, keep=keep)
        if keep:
            print(f"demo: the forge keeps serving at {forge.url} until Ctrl-C")
            forge.wait()
        return DemoOutcome(result=result, forge_url=forge.url, sandbox=sandbox)
    finally:
        forge.stop()
        shutil.rmtree(root, ignore_errors=True)


def _report(result, *, keep: bool) -> None:  # noqa: ANN001
    print()
    print(f"status:        {result.status.value}")
    print(f"pull request:  {result.pull_request_url}" + ("" if keep else "  (the forge stops with the demo; --keep keeps it)"))
    print(f"branch:        {result.branch} at {(result.head_sha or '')[:12]}")
    print(f"agent summary: {result.agent_summary}")
    print("diffstat:")
    for line in result.diffstat.splitlines():
        print(f"  {line}")
    print()
    print("See the run: `.venv/bin/prefect server start`, then open http://127.0.0.1:4200/runs "
          "(the embedded API stored it under PREFECT_HOME).")


def main(args) -> int:  # noqa: ANN001
    outcome = run_demo(sandbox=args.sandbox, keep=args.keep)
    return 0 if outcome.result.pull_request_url else 1
