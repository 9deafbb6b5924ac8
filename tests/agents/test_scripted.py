"""The scripted agent drives every kind of change through real git in local and Docker sandboxes."""

from __future__ import annotations

import json
import os
import time

import pytest

from cloud_runs.agents import AgentTask, ScriptedAgent, run_agent
from cloud_runs.agents.scripted import ScriptedAdapter
from cloud_runs.redact import Redactor
from tests.agents.conftest import REPO_DIR, git, seed_repo

FIX_AND_COMMIT = [
    {"action": "say", "text": "Looking at calc.py"},
    {"action": "run", "argv": ["python3", "-m", "unittest", "-q"], "allow_failure": True},
    {"action": "edit", "path": "calc.py", "old": "return a - b", "new": "return a + b"},
    {"action": "write", "path": "docs/usage.md", "content": "Use `add(a, b)`.\n"},
    {"action": "write", "path": "bin/run.sh", "content": "#!/bin/sh\necho run\n", "executable": True},
    {"action": "delete", "path": "obsolete.txt"},
    {"action": "rename", "path": "old_name.txt", "to": "renamed/new_name.txt"},
    {"action": "chmod", "path": "tool.sh", "executable": True},
    {"action": "run", "argv": ["python3", "-m", "unittest", "-q"]},
    {"action": "commit", "message": "Fix add() and tidy up"},
    {"action": "write", "path": "NOTES.md", "content": "left uncommitted\n"},
    {"action": "say", "text": "Fixed add(); tests pass."},
]
AUTHOR_ENV = {"GIT_AUTHOR_NAME": "Scripted Bot", "GIT_AUTHOR_EMAIL": "bot@example.com"}


def _assert_fixed_and_committed(sandbox, seed_head: str, result) -> None:
    assert result.status == "succeeded", result.output_tail
    assert result.summary == "Fixed add(); tests pass."
    assert (result.input_tokens, result.output_tokens, result.cost_usd) == (None, None, None)
    assert git(sandbox, "rev-parse", "HEAD~1").strip() == seed_head
    assert git(sandbox, "log", "-1", "--format=%an <%ae>|%s") == "Scripted Bot <bot@example.com>|Fix add() and tidy up"
    changes = git(sandbox, "diff", "--name-status", "-M", "HEAD~1", "HEAD").splitlines()
    assert sorted(changes) == [
        "A\tbin/run.sh",
        "A\tdocs/usage.md",
        "D\tobsolete.txt",
        "M\tcalc.py",
        "M\ttool.sh",  # mode change only
        "R100\told_name.txt\trenamed/new_name.txt",
    ]
    tree = [line.split("\t") for line in git(sandbox, "ls-tree", "-r", "HEAD").splitlines()]
    modes = {path: meta.split(" ")[0] for meta, path in tree}
    assert modes["tool.sh"] == "100755" and modes["bin/run.sh"] == "100755" and modes["calc.py"] == "100644"
    assert git(sandbox, "show", "HEAD:calc.py") == "def add(a, b):\n    return a + b"
    assert git(sandbox, "status", "--porcelain") == "?? NOTES.md"


def test_scripted_agent_makes_every_change_in_a_local_sandbox(repo_sandbox):
    seed_head = git(repo_sandbox, "rev-parse", "HEAD").strip()
    lines: list[tuple[str, str]] = []
    task = AgentTask(prompt="Fix add() in calc.py", env=AUTHOR_ENV, timeout_seconds=60)
    result = run_agent(repo_sandbox, ScriptedAgent(steps=FIX_AND_COMMIT).adapter(), task, redactor=Redactor(), on_line=lambda *a: lines.append(a))
    _assert_fixed_and_committed(repo_sandbox, seed_head, result)
    stdout = [json.loads(line) for stream, line in lines if stream == "stdout"]
    assert stdout[0] == {"type": "start", "steps": len(FIX_AND_COMMIT), "cwd": REPO_DIR, "prompt_chars": 20}
    assert [e["exit_code"] for e in stdout if e["type"] == "command"][1] == 0
    assert any("FAIL" in line for stream, line in lines if stream == "stderr")  # the first test run failed, allowed


def test_failing_command_fails_the_agent_with_its_output(repo_sandbox):
    steps = [{"action": "write", "path": "a.txt", "content": "x"}, {"action": "run", "argv": ["python3", "-m", "unittest", "-q"]}]
    result = run_agent(repo_sandbox, ScriptedAdapter(steps), AgentTask(prompt="x"), redactor=Redactor())
    assert result.status == "failed" and result.exit_code == 1
    assert result.summary == "command python3 exited with status 1"
    assert "FAIL: test_add" in result.output_tail
    assert git(repo_sandbox, "status", "--porcelain") == "?? a.txt"  # work so far stays, uncommitted


def test_fail_step_sets_exit_code_and_message(repo_sandbox):
    steps = [{"action": "say", "text": "trying"}, {"action": "fail", "exit_code": 7, "message": "cannot fix this"}]
    result = run_agent(repo_sandbox, ScriptedAdapter(steps), AgentTask(prompt="x"), redactor=Redactor())
    assert (result.status, result.exit_code, result.summary) == ("failed", 7, "cannot fix this")


def test_commit_without_changes_fails_clearly(repo_sandbox):
    result = run_agent(repo_sandbox, ScriptedAdapter([{"action": "commit", "message": "m"}]), AgentTask(prompt="x"), redactor=Redactor())
    assert result.status == "failed" and result.summary == "commit: there is nothing to commit"


def test_edit_of_missing_text_fails_clearly(repo_sandbox):
    steps = [{"action": "edit", "path": "calc.py", "old": "not there", "new": "x"}]
    result = run_agent(repo_sandbox, ScriptedAdapter(steps), AgentTask(prompt="x"), redactor=Redactor())
    assert result.status == "failed" and "the text to replace was not found" in result.summary


def test_hang_is_killed_at_the_timeout_and_the_process_is_gone(repo_sandbox):
    pids: list[int] = []

    def on_line(stream: str, line: str) -> None:
        if stream == "stdout" and '"hang"' in line:
            pids.append(json.loads(line)["pid"])

    started = time.monotonic()
    task = AgentTask(prompt="x", timeout_seconds=2)
    result = run_agent(repo_sandbox, ScriptedAdapter([{"action": "hang", "seconds": 120}]), task, redactor=Redactor(), on_line=on_line)
    assert result.status == "timed_out" and result.exit_code == -1
    assert result.summary == "the agent did not finish within 2 seconds"
    assert time.monotonic() - started < 15
    assert pids, "the hang step never reported its process"
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)


@pytest.mark.parametrize("path", ["../escape.txt", "/etc/passwd", ".git/config", "a/../../b"])
def test_steps_outside_the_repository_are_refused_before_running(path):
    with pytest.raises(ValueError, match="relative path inside the repository"):
        ScriptedAgent(steps=[{"action": "write", "path": path, "content": "x"}])


def test_the_script_itself_refuses_escapes(repo_sandbox):
    """Defence in depth: a recipe written by hand (not through the models) is checked again in the sandbox."""
    from cloud_runs.agents.scripted import RECIPE_PATH, SCRIPT_PATH, script_source

    repo_sandbox.write_file(SCRIPT_PATH, script_source())
    repo_sandbox.write_file(RECIPE_PATH, json.dumps({"steps": [{"action": "write", "path": "../x", "content": "x"}]}).encode())
    lines: list[str] = []
    done = repo_sandbox.exec(["python3", SCRIPT_PATH, RECIPE_PATH], cwd=REPO_DIR, timeout=30, on_output=lambda s, l: lines.append(l))
    assert done.exit_code == 1
    assert any("leaves the repository" in line for line in lines)
    assert not repo_sandbox.host_path("/workspace/x").exists()


@pytest.mark.docker
def test_scripted_agent_makes_every_change_in_a_docker_sandbox(sandbox_image):
    from cloud_runs.sandboxes import DockerSandboxSettings

    settings = DockerSandboxSettings(image=sandbox_image, network_mode="none", lifetime_seconds=300)
    with settings.create(run_id="scripted-docker") as sandbox:
        seed_head = seed_repo(sandbox)
        task = AgentTask(prompt="Fix add() in calc.py", env=AUTHOR_ENV, timeout_seconds=120)
        result = run_agent(sandbox, ScriptedAgent(steps=FIX_AND_COMMIT).adapter(), task, redactor=Redactor())
        _assert_fixed_and_committed(sandbox, seed_head, result)

        started = time.monotonic()
        hang = run_agent(sandbox, ScriptedAdapter([{"action": "hang", "seconds": 120}]), AgentTask(prompt="x", timeout_seconds=2), redactor=Redactor())
        assert hang.status == "timed_out" and time.monotonic() - started < 30
        # Nothing of the hung agent is left running in the container.
        ps: list[str] = []
        sandbox.exec(["ps", "-eo", "args"], timeout=30, on_output=lambda s, l: ps.append(l))
        assert not [line for line in ps if "scripted_agent.py" in line], ps
