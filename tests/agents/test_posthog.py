"""PostHog agent adapter and its Node runner.

Locally, ``node`` is a stand-in replaying the runner's JSON lines. In Docker,
the real runner runs in the sandbox image with the real ``@posthog/agent``
against a stand-in Anthropic Messages API on 127.0.0.1 (host networking).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from cloud_runs.agents import AgentTask, PosthogAgent, run_agent
from cloud_runs.agents.posthog import RUNNER_PATH, PosthogAdapter
from cloud_runs.redact import Redactor
from tests.agents.conftest import IN_CI, REPO_DIR, files_containing, install_standin, seed_repo
from tests.agents.fake_anthropic import INPUT_TOKENS, OUTPUT_TOKENS, FakeAnthropic

KEY = "sk-ant-api03-POSTHOGTEST-0123456789"
RUNNER = Path(__file__).parents[2] / "sandbox_images" / "base" / "posthog-runner.mjs"
SOURCE_RUNNER_PATH = "/tmp/cloud-runs/agent/posthog-runner.mjs"


def _install_source_runner(sandbox) -> None:
    """Puts this checkout's runner in the sandbox, resolving packages from the image's node_modules."""
    sandbox.write_file(SOURCE_RUNNER_PATH, RUNNER.read_bytes())
    done = sandbox.exec(["ln", "-sfn", "/opt/cloud-runs/node_modules", "/tmp/cloud-runs/agent/node_modules"], timeout=30)
    assert done.exit_code == 0


def test_runner_is_invoked_with_the_prompt_file_and_parsed(repo_sandbox):
    standin = install_standin(repo_sandbox, "node")
    task = AgentTask(
        prompt="Fix add()",
        secrets={"ANTHROPIC_API_KEY": KEY},
        env=standin.env("posthog_runner.jsonl", ANTHROPIC_BASE_URL="http://127.0.0.1:9"),
        timeout_seconds=30,
    )
    result = run_agent(repo_sandbox, PosthogAgent(model="claude-sonnet-4-5").adapter(), task, redactor=Redactor())
    record = standin.record()
    assert record["argv"] == [
        RUNNER_PATH,
        "--prompt-file",
        "/tmp/cloud-runs/agent/prompt.md",
        "--cwd",
        REPO_DIR,
        "--model",
        "claude-sonnet-4-5",
    ]
    assert record["prompt_file"] == b"Fix add()"
    assert record["env"]["ANTHROPIC_API_KEY"] == KEY
    assert result.status == "succeeded"
    assert result.summary == "Fixed add() in calc.py. ***"
    assert (result.input_tokens, result.output_tokens, result.cost_usd) == (2100, 88, 0.0123)
    assert result.event_count == 6  # session, thought, tool call, tool result, message, result
    assert files_containing(repo_sandbox.host_path(REPO_DIR), KEY) == []


def test_runner_error_line_fails_the_run():
    adapter = PosthogAgent().adapter()
    events = adapter.parse_line('{"type":"error","message":"cannot reach the model endpoint http://x"}')
    outcome = adapter.summarize(events)
    assert outcome.error == "cannot reach the model endpoint http://x"


def test_runner_source_is_valid_and_refuses_bad_usage_clearly(tmp_path):
    if shutil.which("node") is None:
        message = "node is not installed on this machine"
        pytest.fail(message) if IN_CI else pytest.skip(message)
    assert subprocess.run(["node", "--check", str(RUNNER)], capture_output=True, timeout=60).returncode == 0
    done = subprocess.run(["node", str(RUNNER)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert '"type":"error"' in done.stdout and "--prompt-file and --cwd are required" in done.stderr
    prompt = tmp_path / "prompt.md"
    prompt.write_text("hi")
    done = subprocess.run(
        ["node", str(RUNNER), "--prompt-file", str(prompt), "--cwd", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin"},
    )
    assert done.returncode == 2 and "ANTHROPIC_API_KEY is not set" in done.stderr


@pytest.mark.docker
def test_real_runner_completes_a_task_against_a_local_model_endpoint(sandbox_image):
    """The real @posthog/agent (Claude Agent SDK and Claude Code) in the image, talking to a fake Messages API."""
    from cloud_runs.sandboxes import DockerSandboxSettings

    settings = DockerSandboxSettings(image=sandbox_image, network_mode="host", lifetime_seconds=600)
    with FakeAnthropic(reply="Nothing to change: add() is correct.") as model, settings.create(run_id="posthog-real") as sandbox:
        seed_repo(sandbox)
        _install_source_runner(sandbox)
        lines: list[str] = []
        task = AgentTask(
            prompt="Check add() in calc.py",
            secrets={"ANTHROPIC_API_KEY": KEY},
            env={"ANTHROPIC_BASE_URL": model.url},
            timeout_seconds=240,
        )
        adapter = PosthogAdapter(runner_path=SOURCE_RUNNER_PATH)
        result = run_agent(sandbox, adapter, task, redactor=Redactor(), on_line=lambda s, l: lines.append(l))
        assert result.status == "succeeded", result.output_tail
        assert result.summary == "Nothing to change: add() is correct."
        assert (result.input_tokens, result.output_tokens) == (INPUT_TOKENS, OUTPUT_TOKENS)
        assert result.cost_usd is not None and result.cost_usd > 0
        assert any(r["path"] == "/v1/messages" for r in model.requests)
        assert model.api_keys >= {KEY}
        assert not [line for line in lines if KEY in line]


@pytest.mark.docker
def test_real_runner_fails_fast_when_the_model_endpoint_is_unreachable(sandbox_image):
    from cloud_runs.sandboxes import DockerSandboxSettings

    settings = DockerSandboxSettings(image=sandbox_image, network_mode="none", lifetime_seconds=300)
    with settings.create(run_id="posthog-unreachable") as sandbox:
        seed_repo(sandbox)
        task = AgentTask(
            prompt="x", secrets={"ANTHROPIC_API_KEY": KEY}, env={"ANTHROPIC_BASE_URL": "http://127.0.0.1:9"}, timeout_seconds=120
        )
        # The runner baked into the image at RUNNER_PATH, as production runs it.
        result = run_agent(sandbox, PosthogAgent().adapter(), task, redactor=Redactor())
        assert result.status == "failed" and result.exit_code == 1
        assert result.summary.startswith("cannot reach the model endpoint http://127.0.0.1:9")
        assert result.duration_seconds < 60
