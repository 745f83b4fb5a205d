/**
 * The GPU probe for the native agent (addon/agent/agent.cc), which cannot load the CUDA part itself: reads
 * `{node, ranks: [{env}]}` (the spec's parts the probe looks at, no secret) on stdin and prints this node's
 * NodeProbe as JSON, exactly as the Node agent computes it (backend.ts probeNode).
 */
import { readFileSync } from 'node:fs';
import type { AgentSpec } from './agent-contract.js';
import { probeNode } from './backend.js';

const spec = JSON.parse(readFileSync(0, 'utf8')) as AgentSpec;
process.stdout.write(JSON.stringify(await probeNode(spec)) + '\n');
