#!/usr/bin/env node
// Runs one task with @posthog/agent in local mode and prints JSON lines.
//
// Written against @posthog/agent 2.4.187 and @agentclientprotocol/sdk 1.1.0.
// Local mode: `new Agent({})` (no PostHog backend, no log persistence, no PR
// attachment) gives an in-process Agent Client Protocol connection to the
// Claude adapter (the Claude Agent SDK), authenticated by ANTHROPIC_API_KEY
// (optionally ANTHROPIC_BASE_URL) from this process's environment. This
// script is the ACP client: initialize, new session (cwd = the repository,
// permission mode bypassPermissions), one prompt read from a file. Permission
// requests are approved automatically: the sandbox is the isolation boundary.
// The agent gets no GitHub credentials and this script never pushes.
//
// Usage:
//   node posthog-runner.mjs --prompt-file FILE --cwd DIR [--model ID]
//
// Output, one JSON object per line on stdout:
//   {"type":"runner.started","agent_version":..,"cwd":..,"model":..}
//   {"type":"session.started","session_id":..}
//   {"type":"message","text":..}            agent text (chunks joined per message)
//   {"type":"thought","text":..}            agent reasoning
//   {"type":"tool_call","id":..,"title":..,"kind":..,"status":..}
//   {"type":"tool_call_update","id":..,"status":..}
//   {"type":"plan","entries":[..]}
//   {"type":"usage","input_tokens":..,"output_tokens":..,"cost_usd":..}
//   {"type":"permission","title":..,"option":..}
//   {"type":"log","level":..,"message":..}
//   {"type":"result","stop_reason":..,"is_error":..,"summary":..,"input_tokens":..,"output_tokens":..,"cost_usd":..}
//   {"type":"error","message":..}          then exit 1 (2 for bad usage or configuration)

import { readFile, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const EXIT_FAILED = 1;
const EXIT_USAGE = 2;
const PREFLIGHT_TIMEOUT_MS = 10_000;

function emit(event) {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

function fail(message, code = EXIT_FAILED) {
  emit({ type: "error", message });
  process.stderr.write(`posthog-runner: ${message}\n`);
  process.exit(code);
}

function parseOptions() {
  try {
    const { values } = parseArgs({
      options: {
        "prompt-file": { type: "string" },
        cwd: { type: "string" },
        model: { type: "string" },
        "no-preflight": { type: "boolean", default: false },
      },
      strict: true,
    });
    if (!values["prompt-file"] || !values.cwd) {
      fail("--prompt-file and --cwd are required (usage: posthog-runner.mjs --prompt-file FILE --cwd DIR [--model ID])", EXIT_USAGE);
    }
    return values;
  } catch (error) {
    fail(`${error.message} (usage: posthog-runner.mjs --prompt-file FILE --cwd DIR [--model ID])`, EXIT_USAGE);
  }
}

// Any HTTP answer means the endpoint is there; only a connection failure or a
// timeout fails. Without this the SDK retries with backoff for minutes.
async function preflight(baseUrl) {
  try {
    await fetch(baseUrl, { method: "HEAD", signal: AbortSignal.timeout(PREFLIGHT_TIMEOUT_MS) });
  } catch (error) {
    const cause = error.cause?.code || error.cause?.message || error.name || String(error);
    fail(`cannot reach the model endpoint ${baseUrl} (${cause}); set ANTHROPIC_BASE_URL to a reachable endpoint or allow the sandbox to reach it`);
  }
}

// Joins streamed chunks of one kind (agent text, thoughts) into one line each.
class ChunkBuffer {
  constructor() {
    this.kind = null;
    this.text = "";
    this.lastMessage = "";
  }
  add(kind, text) {
    if (this.kind !== kind) this.flush();
    this.kind = kind;
    this.text += text;
  }
  flush() {
    if (this.kind && this.text) {
      emit({ type: this.kind, text: this.text });
      if (this.kind === "message") this.lastMessage = this.text;
    }
    this.kind = null;
    this.text = "";
  }
}

function chooseAllowOption(options) {
  const order = ["allow_always", "allow_once"];
  for (const kind of order) {
    const option = options.find((o) => o.kind === kind);
    if (option) return option;
  }
  return options.find((o) => !String(o.kind).startsWith("reject")) ?? options[0];
}

async function main() {
  const options = parseOptions();
  const cwd = options.cwd;
  const cwdStat = await stat(cwd).catch(() => null);
  if (!cwdStat?.isDirectory()) fail(`--cwd ${cwd} is not a directory`, EXIT_USAGE);
  let prompt;
  try {
    prompt = await readFile(options["prompt-file"], "utf8");
  } catch (error) {
    fail(`cannot read the prompt file ${options["prompt-file"]}: ${error.code || error.message}`, EXIT_USAGE);
  }
  if (!prompt.trim()) fail(`the prompt file ${options["prompt-file"]} is empty`, EXIT_USAGE);
  if (!process.env.ANTHROPIC_API_KEY && !process.env.ANTHROPIC_AUTH_TOKEN) {
    fail("ANTHROPIC_API_KEY is not set; the Claude adapter of @posthog/agent needs a model key in local mode", EXIT_USAGE);
  }

  // Claude Code refuses to skip permission prompts as root, and nobody is
  // there to answer them: fail now with the fix instead of deep in the SDK.
  if (process.geteuid?.() === 0) {
    fail("the Claude adapter of @posthog/agent does not run as root; run the sandbox as an unprivileged user (the image's `agent` user)", EXIT_USAGE);
  }

  let Agent, acp, agentVersion;
  try {
    ({ Agent } = await import("@posthog/agent/agent"));
    acp = await import("@agentclientprotocol/sdk");
    agentVersion = await packageVersion();
  } catch (error) {
    fail(`cannot load @posthog/agent (${error.code || error.message}); install it next to this script (npm install @posthog/agent)`);
  }
  emit({ type: "runner.started", agent_version: agentVersion, cwd, model: options.model ?? null });

  if (!options["no-preflight"]) {
    await preflight(process.env.ANTHROPIC_BASE_URL || "https://api.anthropic.com");
  }

  const chunks = new ChunkBuffer();
  let usage = { input_tokens: null, output_tokens: null, cost_usd: null };
  const client = {
    async requestPermission(params) {
      chunks.flush();
      const option = chooseAllowOption(params.options ?? []);
      emit({ type: "permission", title: params.toolCall?.title ?? null, option: option?.kind ?? null });
      return option ? { outcome: { outcome: "selected", optionId: option.optionId } } : { outcome: { outcome: "cancelled" } };
    },
    async sessionUpdate(params) {
      const update = params.update ?? {};
      switch (update.sessionUpdate) {
        case "agent_message_chunk":
          if (update.content?.type === "text") chunks.add("message", update.content.text);
          break;
        case "agent_thought_chunk":
          if (update.content?.type === "text") chunks.add("thought", update.content.text);
          break;
        case "tool_call":
          chunks.flush();
          emit({ type: "tool_call", id: update.toolCallId, title: update.title ?? null, kind: update.kind ?? null, status: update.status ?? null });
          break;
        case "tool_call_update":
          chunks.flush();
          if (update.status) emit({ type: "tool_call_update", id: update.toolCallId, status: update.status });
          break;
        case "plan":
          chunks.flush();
          emit({ type: "plan", entries: (update.entries ?? []).map((e) => ({ content: e.content, status: e.status })) });
          break;
        default:
          break;
      }
    },
    async extNotification(method, params) {
      if (method === "_posthog/usage_update" && params?.used) {
        usage = {
          input_tokens: sumTokens(params.used.inputTokens, params.used.cachedReadTokens, params.used.cachedWriteTokens),
          output_tokens: params.used.outputTokens ?? null,
          cost_usd: typeof params.cost === "number" ? params.cost : usage.cost_usd,
        };
        emit({ type: "usage", ...usage });
      } else if (method === "_posthog/error") {
        emit({ type: "log", level: "error", message: params?.message ?? "agent error" });
      } else if (method === "_posthog/console" && (params?.level === "error" || params?.level === "warn")) {
        emit({ type: "log", level: params.level, message: params.message });
      }
    },
    async extMethod() {
      return {};
    },
    async writeTextFile() {
      return {};
    },
    async readTextFile() {
      return { content: "" };
    },
  };

  const agent = new Agent({ skipLogPersistence: true, enricher: { enabled: false } });
  const connection = await agent.run("cloud-runs", "cloud-runs", {
    repositoryPath: cwd,
    adapter: "claude",
    model: options.model,
  });
  const stream = acp.ndJsonStream(connection.clientStreams.writable, connection.clientStreams.readable);
  const conn = new acp.ClientSideConnection(() => client, stream);
  let exitCode = 0;
  try {
    await conn.initialize({ protocolVersion: acp.PROTOCOL_VERSION, clientCapabilities: { fs: { readTextFile: false, writeTextFile: false } } });
    const session = await conn.newSession({ cwd, mcpServers: [], _meta: { permissionMode: "bypassPermissions" } });
    emit({ type: "session.started", session_id: session.sessionId });
    const response = await conn.prompt({ sessionId: session.sessionId, prompt: [{ type: "text", text: prompt }] });
    chunks.flush();
    if (response.usage) {
      usage = {
        input_tokens: sumTokens(response.usage.inputTokens, response.usage.cachedReadTokens, response.usage.cachedWriteTokens),
        output_tokens: response.usage.outputTokens ?? usage.output_tokens,
        cost_usd: usage.cost_usd,
      };
    }
    const isError = response.stopReason !== "end_turn";
    emit({ type: "result", stop_reason: response.stopReason, is_error: isError, summary: chunks.lastMessage, ...usage });
    exitCode = isError ? EXIT_FAILED : 0;
  } catch (error) {
    chunks.flush();
    emit({ type: "error", message: describe(error) });
    exitCode = EXIT_FAILED;
  } finally {
    await Promise.race([connection.cleanup?.(), new Promise((r) => setTimeout(r, 5000))]).catch(() => {});
    await agent.cleanup?.().catch(() => {});
  }
  process.exit(exitCode);
}

// The package's exports map hides package.json; find it next to the resolved entry point.
async function packageVersion() {
  try {
    const entry = fileURLToPath(import.meta.resolve("@posthog/agent/agent"));
    const text = await readFile(join(dirname(entry), "..", "package.json"), "utf8");
    return JSON.parse(text).version ?? null;
  } catch {
    return null;
  }
}

function sumTokens(...values) {
  const known = values.filter((v) => typeof v === "number");
  return known.length ? known.reduce((a, b) => a + b, 0) : null;
}

function describe(error) {
  if (error && typeof error === "object") {
    const data = error.data && typeof error.data === "object" ? error.data.details ?? error.data.message : error.data;
    return [error.message, data].filter(Boolean).join(": ") || JSON.stringify(error);
  }
  return String(error);
}

main().catch((error) => fail(describe(error)));
