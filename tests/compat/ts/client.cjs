// Drives POST /mcp with the official TypeScript MCP client (@modelcontextprotocol/sdk).
// Usage: NODE_PATH=<dir>/node_modules node client.cjs <daemon url> < calls.json
// calls.json: [{"label": ..., "name": <tool>, "arguments": {...}}, ...]. Prints one JSON object:
// the initialize outcome, the tools listed and, per label, the call's result or the error it threw
// (the client checks each structuredContent against the tool's outputSchema, so a shape that
// breaks its own schema shows up here as an error).
"use strict";
const { Client } = require("@modelcontextprotocol/sdk/client/index.js");
const { StreamableHTTPClientTransport } = require("@modelcontextprotocol/sdk/client/streamableHttp.js");

async function main() {
  const calls = JSON.parse(require("fs").readFileSync(0, "utf8"));
  const client = new Client({ name: "sandbox-api-tests", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(new URL(process.argv[2] + "/mcp"));
  await client.connect(transport);
  const out = {
    protocolVersion: transport.protocolVersion ?? null,
    serverVersion: client.getServerVersion(),
    capabilities: client.getServerCapabilities(),
  };
  await client.ping();
  await client.setLoggingLevel("warning");
  out.tools = (await client.listTools()).tools;
  out.calls = {};
  for (const call of calls) {
    try {
      out.calls[call.label] = await client.callTool({ name: call.name, arguments: call.arguments });
    } catch (e) {
      out.calls[call.label] = { thrown: { code: e.code ?? null, message: String(e.message) } };
    }
  }
  await client.close();
  process.stdout.write(JSON.stringify(out));
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack ? e.stack : e) + "\n");
  process.exit(1);
});
