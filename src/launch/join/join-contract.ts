/**
 * Join mode: the contract between `dtrain launch <cfg> --join-agents N --secret-file F` (the controller,
 * on node 0) and `dtrain agent --join host:port --secret-file F` (the same command on every node), for
 * clusters without SSH or srun (PBS, Kubernetes, by hand). The one place it is written down.
 *
 * Nobody starts the agents for the controller, so they come to it: each dials the controller's store
 * (TCP, authenticated with the job key read from the secret file: store/PROTOCOL.md), registers, and
 * blocks until the controller, having N registrations, answers each with its AgentSpec. From then on the
 * agent is driven through the store exactly as agent-contract.ts describes for SSH/srun agents (commands,
 * events, heartbeats). Everything an SSH/srun agent sends on its stdout (output records) and its exit
 * travel through the store too, under the keys below. All keys live under `ctl/`, which workers never
 * see (their proxy prefixes `a<attempt>/`).
 *
 *   ctl/join/count            counter: an agent ADDs 1 and registers under index n-1
 *   ctl/join/agent/<i>        agent → controller: JoinRegistration (JSON)
 *   ctl/join/spec/<i>         controller → agent i: its AgentSpec sealed, `{"type":"sealed_spec",
 *                             "sealed":{iv,tag,data}}` (sealJoinSpec: store frames are authenticated, not
 *                             encrypted, and the spec holds the workers' env), with job_key empty (the
 *                             agent has the key from its secret file), or
 *                             `{"type":"refused","message":...}` (the agent prints it and exits 3)
 *   ctl/join/refused/<i>      agent i → controller: it read its refusal; a refusing controller waits a
 *                             moment for these before it closes the store, so no refusal is lost
 *   ctl/join/out/<node>/<s>   agent → controller: output records (OutputRecord NDJSON lines), s = 0, 1, ...
 *   ctl/join/ack/<node>/<s>   controller → agent: record s was consumed (and deleted). The agent writes
 *                             record s only after ack s-window, so a slow console bounds the store's size
 *                             and slows the workers' output instead.
 *   ctl/join/done/<node>      agent → controller, last: JoinDone, after its final record
 *
 * The agent registers on one connection (kept open: its close tells the agent the controller is gone)
 * and runs the node on a second one, as `runAgent` does for every store-driven agent.
 */
import { keyFromJobKey, open, seal, type SealedKey } from '../job-key-seal.js';
import type { AgentSpec } from '../agent-contract.js';

/** Bumped when a key or field changes meaning. */
export const joinContractVersion = 2;

/** Records in flight per node before the agent waits for the controller to consume them. */
export const recordWindow = 64;

export interface JoinRegistration {
  type: 'join';
  /** dtrain version: the controller refuses a mismatch (exit 3 on both sides) */
  version: string;
  contract: number;
  /** the name the node goes by: `--host`, else the machine's hostname; matched against listed hosts */
  host: string;
  /** the machine's own hostname */
  hostname: string;
  pid: number;
  /** the agent's address on its connection to the store: how the controller's network sees it */
  local_addr: string;
  /** that connection's port on the agent's side: with local_addr it names the connection to the
   * controller, which then notices at once when it closes before the agent said it was done */
  local_port: number;
  /** the controller's address as this agent reached it */
  store_addr: string;
  /** GPUs the node offers (CUDA_VISIBLE_DEVICES when set, else the driver's count): nproc_per_node auto */
  gpus: number;
}

export interface JoinRefusal {
  type: 'refused';
  message: string;
}

export interface JoinDone {
  exit_code: number;
  /** how many output records the agent wrote: the controller relays them all before it lets go */
  records: number;
}

export const joinKeys = {
  count: 'ctl/join/count',
  agent: (i: number) => `ctl/join/agent/${i}`,
  spec: (i: number) => `ctl/join/spec/${i}`,
  refusalRead: (i: number) => `ctl/join/refused/${i}`,
  out: (nodeRank: number, seq: number) => `ctl/join/out/${nodeRank}/${seq}`,
  ack: (nodeRank: number, seq: number) => `ctl/join/ack/${nodeRank}/${seq}`,
  done: (nodeRank: number) => `ctl/join/done/${nodeRank}`,
} as const;

export interface SealedJoinSpec {
  type: 'sealed_spec';
  sealed: SealedKey;
}

/** Agent `index`'s spec under the secret file's key, bound to the store key it is written at. */
export function sealJoinSpec(jobKey: Buffer, index: number, spec: AgentSpec): SealedJoinSpec {
  const sealed = seal(keyFromJobKey(jobKey), Buffer.from(JSON.stringify(spec)), Buffer.from(joinKeys.spec(index)));
  return { type: 'sealed_spec', sealed };
}

/** Opens what sealJoinSpec wrote for agent `index` (StartError when it does not open). */
export function openJoinSpec(jobKey: Buffer, index: number, sent: SealedJoinSpec): AgentSpec {
  return JSON.parse(
    open(keyFromJobKey(jobKey), sent.sealed, Buffer.from(joinKeys.spec(index))).toString(),
  ) as AgentSpec;
}
