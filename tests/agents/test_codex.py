"""Codex adapter: exact ``codex exec`` invocation, JSONL parsing, key handling, failures.

The ``codex`` on the sandbox's PATH is a stand-in replaying ``codex exec --json``
events in the format of codex-cli 0.171.0.
"""

from __future__ import annotations

import pytest

from cloud_runs.agents import AgentTask, CodexAgent, run_agent
from cloud_runs.agents.codex import CodexAdapter
from cloud_runs.redact import Redactor
from tests.agents.conftest import REPO_DIR, files_containing, install_standin

KEY = "sk-proj-TESTKEY-abcdefghijklmnop0123"


def _task(standin, fixture, **extra):
    return AgentTask(
        prompt="Fix add() in calc.py",
        secrets={"OPENAI_API_KEY": KEY},
        env=standin.env(fixture, STANDIN_SECRET_VAR="OPENAI_API_KEY", OPENAI_BASE_URL="http://127.0.0.1:9/v1", **extra),
        timeout_seconds=30,
    )


def test_codex_exec_is_invoked_exactly_and_parsed(repo_sandbox):
    standin = install_standin(repo_sandbox, "codex")
    lines: list[str] = []
    result = run_agent(
        repo_sandbox,
        CodexAgent(model="gpt-5-codex").adapter(),
        _task(standin, "codex_exec.jsonl"),
        redactor=Redactor(),
        on_line=lambda stream, line: lines.append(line),
    )
    record = standin.record()
    assert record["argv"] == [
        "exec",
        "--json",
        "--color",
        "never",
        "--dangerously-bypass-approvals-and-sandbox",
        "--skip-git-repo-check",
        "--ephemeral",
        "-C",
        REPO_DIR,
        "-c",
        'openai_base_url="http://127.0.0.1:9/v1"',
        "--model",
        "gpt-5-codex",
        "-",
    ]
    assert record["stdin"] == b"Fix add() in calc.py"
    assert record["env"]["OPENAI_API_KEY"] == KEY and record["env"]["CODEX_API_KEY"] == KEY
    assert record["env"]["OPENAI_BASE_URL"] == "http://127.0.0.1:9/v1"

    assert result.status == "succeeded"
    assert result.summary == "Fixed add() in calc.py; tests pass. Key in env: ***"
    assert (result.input_tokens, result.output_tokens, result.cost_usd) == (24763, 122, None)
    assert result.event_count == 6  # thread, reasoning, command, file change, message, usage
    assert not [line for line in lines if KEY in line]
    assert files_containing(repo_sandbox.host_path(REPO_DIR), KEY) == []


def test_turn_failed_is_a_failed_run_with_the_error_as_summary(repo_sandbox):
    standin = install_standin(repo_sandbox, "codex")
    result = run_agent(repo_sandbox, CodexAdapter(), _task(standin, "codex_failed.jsonl", STANDIN_EXIT="1"), redactor=Redactor())
    assert result.status == "failed" and result.exit_code == 1
    assert result.summary == "unexpected status 401 Unauthorized: Incorrect API key provided: ***"
    assert KEY not in result.output_tail


def test_a_retry_notice_followed_by_a_completed_turn_is_not_a_failure():
    adapter = CodexAdapter()
    events = [
        *adapter.parse_line('{"type":"error","message":"Reconnecting... 1/5"}'),
        *adapter.parse_line('{"type":"item.completed","item":{"id":"i","type":"agent_message","text":"done"}}'),
        *adapter.parse_line('{"type":"turn.completed","usage":{"input_tokens":10,"cached_input_tokens":4,"output_tokens":2}}'),
    ]
    outcome = adapter.summarize(events)
    assert outcome.error is None and outcome.summary == "done"
    assert (outcome.usage.input_tokens, outcome.usage.output_tokens) == (10, 2)


def test_usage_of_several_turns_is_summed():
    adapter = CodexAdapter()
    line = '{"type":"turn.completed","usage":{"input_tokens":100,"cached_input_tokens":0,"output_tokens":7}}'
    outcome = adapter.summarize(adapter.parse_line(line) + adapter.parse_line(line))
    assert (outcome.usage.input_tokens, outcome.usage.output_tokens) == (200, 14)


@pytest.mark.docker
def test_real_codex_output_is_parsed(sandbox_image):
    """The real CLI in the image, against a stand-in Responses API: proves the parser reads its actual JSONL."""
    from cloud_runs.sandboxes import DockerSandboxSettings
    from tests.agents.conftest import seed_repo
    from tests.agents.fake_openai import INPUT_TOKENS, OUTPUT_TOKENS, FakeOpenAI

    settings = DockerSandboxSettings(image=sandbox_image, network_mode="host", lifetime_seconds=600)
    with FakeOpenAI(reply="Codex checked calc.py.") as model, settings.create(run_id="codex-real") as sandbox:
        seed_repo(sandbox)
        lines: list[str] = []
        task = AgentTask(prompt="Review calc.py", secrets={"OPENAI_API_KEY": KEY}, env={"OPENAI_BASE_URL": model.url}, timeout_seconds=240)
        result = run_agent(sandbox, CodexAdapter(), task, redactor=Redactor(), on_line=lambda s, l: lines.append(l))
        assert result.status == "succeeded", result.output_tail
        assert result.summary == "Codex checked calc.py."
        assert (result.input_tokens, result.output_tokens, result.cost_usd) == (INPUT_TOKENS, OUTPUT_TOKENS, None)
        assert any(r["path"] == "/v1/responses" for r in model.requests)
        assert model.authorizations == {f"Bearer {KEY}"}
        assert not [line for line in lines if KEY in line]
