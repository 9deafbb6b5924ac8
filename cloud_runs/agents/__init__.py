"""Coding agents: one interface (:mod:`.base`), one adapter per agent, and their settings.

Example:
    >>> from cloud_runs.agents import AgentTask, agent_settings_from_name, run_agent
    >>> adapter = agent_settings_from_name("scripted").adapter()
"""

from __future__ import annotations

from cloud_runs.agents.base import (
    AGENT_DIR,
    PROMPT_PATH,
    AgentAdapter,
    AgentEvent,
    AgentInvocation,
    AgentOutcome,
    AgentResult,
    AgentTask,
    AgentUsage,
    check_secrets,
    run_agent,
)
from cloud_runs.agents.claude_code import ClaudeCodeAdapter
from cloud_runs.agents.codex import CodexAdapter
from cloud_runs.agents.command import CommandAdapter
from cloud_runs.agents.posthog import RUNNER_PATH, PosthogAdapter
from cloud_runs.agents.scripted import ScriptedAdapter, ScriptedStep
from cloud_runs.agents.settings import (
    AGENT_NAMES,
    AGENT_SETTINGS,
    AgentSettings,
    ClaudeCodeAgent,
    CodexAgent,
    CommandAgent,
    PosthogAgent,
    ScriptedAgent,
    agent_settings_from_name,
)

__all__ = [
    "AGENT_DIR",
    "AGENT_NAMES",
    "AGENT_SETTINGS",
    "PROMPT_PATH",
    "RUNNER_PATH",
    "AgentAdapter",
    "AgentEvent",
    "AgentInvocation",
    "AgentOutcome",
    "AgentResult",
    "AgentSettings",
    "AgentTask",
    "AgentUsage",
    "ClaudeCodeAdapter",
    "ClaudeCodeAgent",
    "CodexAdapter",
    "CodexAgent",
    "CommandAdapter",
    "CommandAgent",
    "PosthogAdapter",
    "PosthogAgent",
    "ScriptedAdapter",
    "ScriptedAgent",
    "ScriptedStep",
    "agent_settings_from_name",
    "check_secrets",
    "run_agent",
]
