"""Agent settings: the discriminated union the flow and the Prefect form use."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from cloud_runs.agents import (
    AGENT_SETTINGS,
    AgentSettings,
    ClaudeCodeAdapter,
    ClaudeCodeAgent,
    CodexAdapter,
    CommandAgent,
    PosthogAdapter,
    ScriptedAdapter,
    ScriptedAgent,
    agent_settings_from_name,
)
from cloud_runs.errors import InputError


@pytest.mark.parametrize(
    ("name", "adapter_type", "secrets"),
    [
        ("claude-code", ClaudeCodeAdapter, ("ANTHROPIC_API_KEY",)),
        ("codex", CodexAdapter, ("OPENAI_API_KEY",)),
        ("posthog", PosthogAdapter, ("ANTHROPIC_API_KEY",)),
        ("scripted", ScriptedAdapter, ()),
        (" Claude-Code ", ClaudeCodeAdapter, ("ANTHROPIC_API_KEY",)),
    ],
)
def test_names_give_settings_that_build_their_adapter(name, adapter_type, secrets):
    adapter = agent_settings_from_name(name).adapter()
    assert isinstance(adapter, adapter_type)
    assert adapter.required_secrets == secrets


def test_command_needs_a_command_and_unknown_names_are_refused():
    with pytest.raises(InputError, match="needs a command"):
        agent_settings_from_name("command")
    settings = agent_settings_from_name("command", command=["my-agent", "{prompt_file}"])
    assert settings == CommandAgent(command=["my-agent", "{prompt_file}"])
    with pytest.raises(InputError, match="unknown agent 'gpt'") as caught:
        agent_settings_from_name("gpt")
    assert "claude-code" in caught.value.hint


def test_settings_round_trip_through_json_as_a_flow_parameter_would():
    class FlowParameters(BaseModel):
        agent: AgentSettings

    original = FlowParameters(agent=ScriptedAgent(steps=[{"action": "edit", "path": "a.py", "old": "x", "new": "y"}]))
    restored = FlowParameters.model_validate_json(original.model_dump_json())
    assert restored == original
    assert restored.agent.steps[0].action == "edit"
    schema = FlowParameters.model_json_schema()
    assert set(schema["$defs"]) >= {"ScriptedAgent", "ClaudeCodeAgent", "CodexAgent", "PosthogAgent", "CommandAgent"}


def test_invalid_settings_are_refused():
    with pytest.raises(ValidationError):
        AGENT_SETTINGS.validate_python({"type": "claude-code", "max_turns": 0})
    with pytest.raises(ValidationError):
        AGENT_SETTINGS.validate_python({"type": "command", "command": []})
    with pytest.raises(ValidationError):
        AGENT_SETTINGS.validate_python({"type": "command", "command": ["x"], "secrets": ["NOT A NAME"]})
    with pytest.raises(ValidationError):
        ClaudeCodeAgent(model="x", unexpected=1)
    with pytest.raises(InputError, match="step 0.write.path"):
        ScriptedAdapter([{"action": "write", "path": "/abs"}])
    with pytest.raises(InputError, match="step 0"):
        ScriptedAdapter([{"action": "explode"}])


def test_importing_agents_pulls_in_no_sdk():
    import subprocess
    import sys

    code = "import sys, cloud_runs.agents; print(sorted(m for m in ('docker', 'modal', 'prefect') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr
