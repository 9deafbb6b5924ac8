"""The cloud_run flow end to end: real Prefect API, real git, real PyGithub
against the forge, local and Docker sandboxes, the scripted agent."""

from __future__ import annotations

import subprocess

import pytest
from prefect.client.orchestration import get_client

from cloud_runs.agents import CommandAgent, ScriptedAgent
from cloud_runs.demo import FIX_STEPS
from cloud_runs.errors import InputError
from cloud_runs.runs import RunFailed, RunStatus
from flows.cloud_run import cloud_run
from tests.flows.conftest import MODEL_KEY

FIX = ScriptedAgent(steps=FIX_STEPS)
COMMON = dict(github_app="test", agent_credentials="test", agent_timeout_seconds=300)


def branch_file(world, repository: str, branch: str, path: str) -> str:
    return subprocess.run(["git", "--git-dir", str(world.forge.repo_path(repository)), "show", f"{branch}:{path}"],
                          capture_output=True, text=True, check=True, timeout=30).stdout


def assert_no_live_tokens(world) -> None:
    live = [t for t in world.forge.tokens if not t.revoked and t.expires_at > world.forge.now()]
    assert live == [], f"tokens left alive: {[(t.repositories, t.permissions) for t in live]}"


def test_prompt_task_in_a_local_sandbox_opens_a_pull_request(world):
    repository, _ = world.new_repository(issue=False)
    result = cloud_run(repository=repository, prompt="Fix the off-by-one in mean()", agent=FIX,
                       sandbox="local/test", labels=["cloud-runs"], **COMMON)

    assert result.status is RunStatus.PR_OPENED
    [pull] = world.forge.pulls(repository)
    assert pull["number"] == result.pull_request_number and pull["head"] == result.branch == "cloud-runs/fix-the-off-by-one-in-mean"
    assert pull["base"] == "main" and pull["labels"] == ["cloud-runs"]
    assert "Fixed the off-by-one" in pull["body"] and "Closes #" not in pull["body"]
    assert "/ len(values)" in branch_file(world, repository, result.branch, "stats.py")
    assert result.files_changed == ["stats.py"]
    assert_no_live_tokens(world)


def test_issue_task_closes_the_issue_and_comments_on_it(world):
    repository, issue = world.new_repository()
    result = cloud_run(repository=repository, issue=issue, agent=FIX, sandbox="local/test", **COMMON)

    assert result.status is RunStatus.PR_OPENED
    [pull] = world.forge.pulls(repository)
    assert f"Closes #{issue}" in pull["body"] and pull["title"] == "mean() returns the wrong value"
    comments = world.forge.issue_comments(repository, issue)
    assert any(result.pull_request_url in comment["body"] for comment in comments)
    assert_no_live_tokens(world)


def test_a_second_run_for_the_same_issue_updates_the_same_pull_request(world):
    repository, issue = world.new_repository()
    first = cloud_run(repository=repository, issue=issue, agent=FIX, sandbox="local/test", **COMMON)
    follow_up = ScriptedAgent(steps=[{"action": "write", "path": "CHANGELOG.md", "content": "- mean() fixed\n"},
                                     {"action": "say", "text": "Added a changelog entry."}])
    second = cloud_run(repository=repository, issue=issue, agent=follow_up, sandbox="local/test", **COMMON)

    assert (first.status, second.status) == (RunStatus.PR_OPENED, RunStatus.PR_UPDATED)
    assert second.pull_request_number == first.pull_request_number and len(world.forge.pulls(repository)) == 1
    # The follow-up continued from the first run's commit: both changes are on the branch.
    assert "/ len(values)" in branch_file(world, repository, second.branch, "stats.py")
    assert branch_file(world, repository, second.branch, "CHANGELOG.md") == "- mean() fixed\n"
    assert world.forge.pulls(repository)[0]["head_sha"] == second.head_sha


@pytest.mark.docker
def test_issue_task_in_a_docker_sandbox_leaves_no_container(world):
    repository, issue = world.new_repository()
    result = cloud_run(repository=repository, issue=issue, agent=FIX, sandbox="docker/test", **COMMON)

    assert result.status is RunStatus.PR_OPENED
    assert "/ len(values)" in branch_file(world, repository, result.branch, "stats.py")
    left = subprocess.run(["docker", "ps", "-aq", "--filter", "label=cloud-runs.run-id"], capture_output=True,
                          text=True, timeout=30).stdout.split()
    assert left == []
    assert_no_live_tokens(world)


def test_an_agent_that_changes_nothing_opens_no_pull_request(world):
    repository, _ = world.new_repository(issue=False)
    result = cloud_run(repository=repository, prompt="Look around", sandbox="local/test",
                       agent=ScriptedAgent(steps=[{"action": "say", "text": "Nothing to do."}]), **COMMON)

    assert result.status is RunStatus.NO_CHANGES and result.branch is None and result.pull_request_url is None
    assert world.forge.pulls(repository) == []
    assert_no_live_tokens(world)


def test_a_failing_agent_fails_the_run_and_publishes_nothing(world):
    repository, _ = world.new_repository(issue=False)
    agent = ScriptedAgent(steps=[{"action": "write", "path": "half.txt", "content": "half done\n"},
                                 {"action": "fail", "exit_code": 3, "message": "cannot finish"}])
    state = cloud_run(repository=repository, prompt="Try", agent=agent, sandbox="local/test", return_state=True, **COMMON)

    assert state.is_failed()
    with pytest.raises(RunFailed) as raised:
        state.result()
    assert raised.value.result.status is RunStatus.FAILED and "cannot finish" in raised.value.result.error
    assert world.forge.pulls(repository) == []
    assert_no_live_tokens(world)


def test_an_agent_that_runs_out_of_time_is_timed_out(world):
    repository, _ = world.new_repository(issue=False)
    agent = ScriptedAgent(steps=[{"action": "hang", "seconds": 120}])
    state = cloud_run(repository=repository, prompt="Hang", agent=agent, sandbox="local/test", return_state=True,
                      **{**COMMON, "agent_timeout_seconds": 3})

    with pytest.raises(RunFailed) as raised:
        state.result()
    assert raised.value.result.status is RunStatus.TIMED_OUT
    assert world.forge.pulls(repository) == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"repository": "acme/../etc"}, "is not a GitHub repository name"),
        ({"repository": "acme/stats;rm -rf /"}, "is not a GitHub repository name"),
        ({"repository": "https://github.com/acme/stats"}, "is not a GitHub repository name"),
        ({"prompt": "   "}, "the run has no task"),
        ({"branch": "cloud-runs/{slug}..x"}, "contains '..'"),
        ({"branch": "runs/{nope}"}, "unknown placeholder"),
        ({"github_app": "missing"}, "no GitHub App block named 'missing'"),
        ({"sandbox": "local/missing"}, "no Cloud Runs Local Sandbox block named 'missing'"),
        ({"sandbox": "kubernetes/test"}, "provider/name"),
        ({"agent": {"type": "nope"}}, "agent"),
        ({"agent": CommandAgent(command=["x"], secrets=["ANTHROPIC_API_KEY"]), "agent_credentials": "missing"},
         "no Agent Credentials block named 'missing'"),
        ({"agent_timeout_seconds": 3600}, "does not fit in the sandbox's lifetime"),
    ],
)
def test_bad_input_fails_before_any_side_effect(world, overrides, message):
    repository, _ = world.new_repository(issue=False)
    requests_before, tokens_before = len(world.forge.requests), len(world.forge.tokens)
    parameters = {"repository": repository, "prompt": "Fix it", "agent": FIX, "sandbox": "local/test", **COMMON,
                  **overrides}
    with pytest.raises(Exception) as raised:
        cloud_run(**parameters)

    assert message in str(raised.value)
    if not isinstance(raised.value, InputError):  # Prefect's own parameter validation (unknown agent type)
        assert "agent" in str(raised.value)
    assert len(world.forge.requests) == requests_before and len(world.forge.tokens) == tokens_before
    assert world.forge.pulls(repository) == []


@pytest.mark.docker
def test_nothing_in_the_sandbox_can_write_to_github_and_nothing_published_holds_a_secret(world, prefect_api):
    """Containment: an agent searching its sandbox finds no working GitHub credential or App key."""
    repository, issue = world.new_repository()
    search = CommandAgent(command=["python3", "-c", CONTAINMENT_PROBE, world.forge.api_url, repository],
                          secrets=["ANTHROPIC_API_KEY"])
    result = cloud_run(repository=repository, issue=issue, agent=search, sandbox="docker/test", **COMMON)

    assert result.status is RunStatus.PR_OPENED
    findings = branch_file(world, repository, result.branch, "findings.txt")
    assert findings.splitlines() == ["working_tokens=0", "private_keys=0", "model_key_seen=1"], findings
    [pull] = world.forge.pulls(repository)
    secrets = [MODEL_KEY, world.app.private_key_pem.splitlines()[1]]
    published = [pull["body"], pull["title"], result.model_dump_json(),
                 *(comment["body"] for comment in world.forge.issue_comments(repository, issue))]
    published += _artifact_texts()
    for text in published:
        for secret in secrets:
            assert secret not in text
        assert "ghs_" not in text


def _artifact_texts() -> list[str]:
    import asyncio

    async def read() -> list[str]:
        async with get_client() as client:
            artifacts = await client.read_artifacts()
            return [str(artifact.data) + str(artifact.description) for artifact in artifacts]

    return asyncio.run(read())


# Runs inside the sandbox as the agent: looks everywhere a credential could be
# (environment, every process's environment and argv, files) and tries each
# token-shaped string against the forge. Writes only counts into the repo.
CONTAINMENT_PROBE = r'''
import glob, os, re, sys, urllib.request
api, repository = sys.argv[1], sys.argv[2]
token_re = re.compile(rb"gh[pousr]_[A-Za-z0-9_.\-]{16,}")
blobs = [repr(dict(os.environ)).encode()]
for path in glob.glob("/proc/[0-9]*/environ") + glob.glob("/proc/[0-9]*/cmdline"):
    try: blobs.append(open(path, "rb").read())
    except OSError: pass
for root in ("/workspace", "/tmp", "/home", "/etc", "/opt/cloud-runs"):
    for dirpath, _, files in os.walk(root):
        if "node_modules" in dirpath: continue
        for name in files:
            try: blobs.append(open(os.path.join(dirpath, name), "rb").read(1 << 20))
            except OSError: pass
candidates = {m for blob in blobs for m in token_re.findall(blob)}
working = 0
for token in candidates:
    request = urllib.request.Request(f"{api}/repos/{repository}", headers={"Authorization": f"token {token.decode()}"})
    try:
        urllib.request.urlopen(request, timeout=10); working += 1
    except Exception: pass
marker = b"PRIVATE " + b"KEY-----"  # split, so this probe's own argv does not count
keys = sum(marker in blob for blob in blobs)
model_key_seen = int(bool(os.environ.get("ANTHROPIC_API_KEY")))
with open("findings.txt", "w") as out:
    out.write(f"working_tokens={working}\nprivate_keys={keys}\nmodel_key_seen={model_key_seen}\n")
print("probe done")
'''


HANGING_RUN = """
import sys
from cloud_runs.agents import ScriptedAgent
from flows.cloud_run import cloud_run
cloud_run(repository=sys.argv[1], prompt="Take forever", agent=ScriptedAgent(steps=[{"action": "hang", "seconds": 600}]),
          sandbox="local/test", github_app="test", agent_credentials="test", agent_timeout_seconds=300)
"""


def test_cancelling_a_running_flow_leaves_no_sandbox_and_no_live_token(world, prefect_api, tmp_path):
    """A worker cancels a flow run by sending its process SIGTERM: teardown must still happen."""
    import os
    import signal
    import sys
    import time

    from cloud_runs.sandboxes import LocalSandboxSettings

    repository, _ = world.new_repository(issue=False)
    before = {ref.id for ref in LocalSandboxSettings().list_sandboxes()}
    tokens_before = len(world.forge.tokens)
    env = {**os.environ, "PREFECT_API_URL": prefect_api}
    process = subprocess.Popen([sys.executable, "-c", HANGING_RUN, repository], env=env, cwd=tmp_path,
                               stdout=open(tmp_path / "run.log", "wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            started = [ref for ref in LocalSandboxSettings().list_sandboxes() if ref.id not in before]
            clone_revoked = any(t.revoked and t.permissions.get("contents") == "read" and len(t.permissions) <= 2
                                for t in world.forge.tokens[tokens_before:])
            if started and clone_revoked:
                break
            assert process.poll() is None, (tmp_path / "run.log").read_text()
            time.sleep(0.5)
        else:
            pytest.fail("the run never reached its agent step:\n" + (tmp_path / "run.log").read_text())
        time.sleep(2)  # the agent is hanging now
        assert any(not t.revoked for t in world.forge.tokens[tokens_before:]), "a live token should exist mid-run"
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()

    log = (tmp_path / "run.log").read_text()
    assert [ref for ref in LocalSandboxSettings().list_sandboxes() if ref.id not in before] == [], log
    assert all(t.revoked for t in world.forge.tokens[tokens_before:]), log
    assert "Cloud run: cancelled" in "".join(_artifact_texts())


def test_changes_holding_a_secret_of_the_run_are_never_pushed(world):
    """An agent that writes its model key into the repository (even in a commit it later reverts)."""
    repository, _ = world.new_repository(issue=False)
    leaky = CommandAgent(command=["sh", "-c", 'cd "$1" && printf "%s\\n" "$ANTHROPIC_API_KEY" > .env && git add .env '
                                  '&& git -c user.name=a -c user.email=a@b commit -qm oops && git rm -q .env '
                                  '&& git -c user.name=a -c user.email=a@b commit -qm "remove it"', "leak", "{repo_dir}"],
                         secrets=["ANTHROPIC_API_KEY"])
    state = cloud_run(repository=repository, prompt="Leak", agent=leaky, sandbox="local/test", return_state=True,
                      **COMMON)

    assert state.is_failed() and "contain a secret value" in state.message
    assert MODEL_KEY not in state.message
    assert subprocess.run(["git", "--git-dir", str(world.forge.repo_path(repository)), "for-each-ref", "--format=%(refname)", "refs/heads"],
                          capture_output=True, text=True, timeout=30).stdout.split() == ["refs/heads/main"]
    assert world.forge.pulls(repository) == []
    assert_no_live_tokens(world)


def test_the_run_command_runs_the_flow_with_saved_blocks(world, prefect_api, tmp_path):
    """`cloud-runs run`, the command for one task against GitHub, here against the forge."""
    import os
    import sys

    repository, issue = world.new_repository()
    out = subprocess.run(
        [sys.executable, "-m", "cloud_runs.cli", "run", "--repository", repository, "--issue", str(issue),
         "--agent", "scripted", "--sandbox", "local/test", "--github-app", "test", "--agent-credentials", "test",
         "--timeout", "120"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**os.environ, "PREFECT_API_URL": prefect_api})

    assert out.returncode == 0, out.stderr[-3000:]
    assert '"status": "no_changes"' in out.stdout  # the scripted agent without steps changes nothing
    assert world.forge.pulls(repository) == []


@pytest.mark.docker
def test_run_agent_in_docker_script_runs_the_flow_in_a_docker_sandbox(world, prefect_api, tmp_path):
    import os
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "run_agent_in_docker.py"
    repository, _ = world.new_repository(issue=False)
    out = subprocess.run(
        [sys.executable, str(script), "--repository", repository, "--prompt", "Look around", "--agent", "scripted",
         "--block", "test", "--github-app", "test", "--agent-credentials", "test", "--timeout", "120"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**os.environ, "PREFECT_API_URL": prefect_api})

    assert out.returncode == 0, out.stderr[-3000:]
    assert '"status": "no_changes"' in out.stdout
    assert "(docker) is up" in out.stdout + out.stderr  # the provision step's log line
