"""Claude Code adapter: exact invocation, stream-json parsing, secrets, failures, timeouts.

The ``claude`` on the sandbox's PATH is a stand-in (see conftest) replaying
stream-json lines in the format of Claude Code 2.1.332.
"""

from __future__ import annotations

import os
import time

import pytest

from cloud_runs.agents import AgentTask, ClaudeCodeAdapter, ClaudeCodeAgent, run_agent
from cloud_runs.errors import InputError
from cloud_runs.redact import Redactor
from tests.agents.conftest import REPO_DIR, files_containing, install_standin

KEY = "sk-ant-api03-TESTKEY-0123456789abcdef"
GITHUB_TOKEN = "ghs_" + "Q1w2E3r4T5y6" * 4


def _task(standin, fixture="claude_stream.jsonl", prompt="Fix add() in calc.py", **extra):
    return AgentTask(
        prompt=prompt,
        repo_dir=REPO_DIR,
        secrets={"ANTHROPIC_API_KEY": KEY},
        env=standin.env(fixture, ANTHROPIC_BASE_URL="http://127.0.0.1:9/anthropic", **extra),
        timeout_seconds=30,
    )


def test_claude_code_run_is_invoked_exactly_and_parsed(repo_sandbox):
    standin = install_standin(repo_sandbox, "claude")
    lines: list[tuple[str, str]] = []
    redactor = Redactor([GITHUB_TOKEN])
    adapter = ClaudeCodeAgent(model="claude-sonnet-4-5", max_turns=7).adapter()

    result = run_agent(repo_sandbox, adapter, _task(standin), redactor=redactor, on_line=lambda s, l: lines.append((s, l)))

    record = standin.record()
    assert record["argv"] == [
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--dangerously-skip-permissions",
        "--model",
        "claude-sonnet-4-5",
        "--max-turns",
        "7",
    ]
    assert record["cwd"] == REPO_DIR
    assert record["stdin"] == b"Fix add() in calc.py"
    assert record["env"]["ANTHROPIC_API_KEY"] == KEY
    assert record["env"]["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9/anthropic"
    assert not {"GH_TOKEN", "GITHUB_TOKEN"} & record["env"].keys()
    assert GITHUB_TOKEN not in str(record["env"])

    assert result.status == "succeeded" and result.exit_code == 0
    assert result.summary == "Fixed add() in calc.py: it subtracted. (I saw ANTHROPIC_API_KEY=*** in the environment.)"
    assert (result.input_tokens, result.output_tokens) == (18 + 6354 + 20448, 198)
    assert result.cost_usd == pytest.approx(0.0421875)
    assert result.event_count == 9  # init, 3 messages, 2 tools, 2 tool results, thinking... and result
    assert len(lines) == 8 and all(stream == "stdout" for stream, _ in lines)

    # The key appears in no streamed line, no result field, no file under the repository.
    assert KEY not in repr(result) and KEY not in result.output_tail
    assert not [line for _, line in lines if KEY in line]
    assert any("***" in line for _, line in lines)
    assert files_containing(repo_sandbox.host_path(REPO_DIR), KEY) == []
    assert files_containing(repo_sandbox.host_path("/tmp/cloud-runs/agent"), KEY) == []


def test_reported_error_fails_the_run_even_with_exit_status_zero(repo_sandbox):
    standin = install_standin(repo_sandbox, "claude")
    result = run_agent(repo_sandbox, ClaudeCodeAdapter(), _task(standin, "claude_max_turns.jsonl"), redactor=Redactor())
    assert result.status == "failed"
    assert result.summary == "claude ended with error_max_turns"
    assert (result.input_tokens, result.output_tokens, result.cost_usd) == (10, 20, 0.0012)


def test_non_zero_exit_is_failed_with_a_redacted_tail(repo_sandbox):
    standin = install_standin(repo_sandbox, "claude")
    task = _task(standin, None, STANDIN_EXIT="3", STANDIN_STDERR="Invalid API key: {SECRET} (status 401)")
    result = run_agent(repo_sandbox, ClaudeCodeAdapter(), task, redactor=Redactor())
    assert result.status == "failed" and result.exit_code == 3
    assert result.output_tail == "Invalid API key: *** (status 401)"
    assert result.summary == "the agent exited with status 3"
    assert (result.input_tokens, result.output_tokens, result.cost_usd) == (None, None, None)


def test_timeout_kills_the_cli_and_its_wrapper(repo_sandbox):
    standin = install_standin(repo_sandbox, "claude")
    task = AgentTask(
        prompt="hang", secrets={"ANTHROPIC_API_KEY": KEY}, env=standin.env(None, STANDIN_SLEEP="60"), timeout_seconds=2
    )
    started = time.monotonic()
    result = run_agent(repo_sandbox, ClaudeCodeAdapter(), task, redactor=Redactor())
    assert result.status == "timed_out" and result.exit_code == -1
    assert time.monotonic() - started < 15
    pid = standin.record()["pid"]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_missing_key_is_refused_before_anything_reaches_the_sandbox(repo_sandbox):
    task = AgentTask(prompt="x", repo_dir=REPO_DIR)
    with pytest.raises(InputError, match="ANTHROPIC_API_KEY"):
        run_agent(repo_sandbox, ClaudeCodeAdapter(), task, redactor=Redactor())
    assert not repo_sandbox.host_path("/tmp/cloud-runs/agent").exists()


@pytest.mark.docker
def test_real_claude_code_output_is_parsed(sandbox_image):
    """The real CLI in the image, against a stand-in Messages API: proves the parser reads its actual stream-json."""
    from cloud_runs.sandboxes import DockerSandboxSettings
    from tests.agents.conftest import seed_repo
    from tests.agents.fake_anthropic import INPUT_TOKENS, OUTPUT_TOKENS, FakeAnthropic

    settings = DockerSandboxSettings(image=sandbox_image, network_mode="host", lifetime_seconds=600)
    with FakeAnthropic(reply="calc.py looks right to me.") as model, settings.create(run_id="claude-real") as sandbox:
        seed_repo(sandbox)
        lines: list[str] = []
        task = AgentTask(prompt="Review calc.py", secrets={"ANTHROPIC_API_KEY": KEY}, env={"ANTHROPIC_BASE_URL": model.url}, timeout_seconds=240)
        result = run_agent(sandbox, ClaudeCodeAdapter(max_turns=3), task, redactor=Redactor(), on_line=lambda s, l: lines.append(l))
        assert result.status == "succeeded", result.output_tail
        assert result.summary == "calc.py looks right to me."
        assert result.output_tokens == OUTPUT_TOKENS and result.input_tokens == INPUT_TOKENS
        assert result.cost_usd is not None and result.cost_usd > 0
        assert result.event_count >= 3  # init, message, result
        assert model.api_keys >= {KEY}
        assert not [line for line in lines if KEY in line]
