/**
 * Runs every stage's program together, written independently of how schedule.ts builds them, and fails on
 * anything a real run would trip over: a compute whose input is not there, a message delivered to the wrong
 * op, a deadlock, a leftover message or stashed activation.
 *
 * Two p2p semantics: 'rendezvous' (a send completes only when the peer is at the matching receive: the
 * strictest blocking model, MPI_Ssend) and 'buffered' (sends never block; receives take the oldest message).
 */
import type { Instruction, StageSchedule } from '../../src/runtime/pipeline/index.js';

export type P2pSemantics = 'rendezvous' | 'buffered';

export interface SimResult {
  /** compute labels per stage in the order they ran, e.g. "F0.0" */
  executed: string[][];
  /** most activations stashed at once per stage */
  peakStashed: number[];
  messages: number;
}

interface Message {
  gradient: boolean;
  microbatch: number;
  producerVs: number;
  tag: number;
}

export function simulatePrograms(schedules: StageSchedule[], semantics: P2pSemantics): SimResult {
  const p = schedules.length;
  const { virtualStages: v, microbatches: m } = schedules[0];
  const V = p * v;
  const vsOf = (stage: number, chunk: number) => chunk * p + stage;
  const stageOf = (vs: number) => vs % p;
  const key = (mb: number, vs: number) => `${mb}@${vs}`;

  const forwardDone = new Set<string>();
  const backwardDone = new Set<string>();
  // data present on a stage: what each virtual stage produced (outputs) and received (inputs)
  const activationIn = schedules.map(() => new Set<string>());
  const gradientIn = schedules.map(() => new Set<string>());
  const activationOut = schedules.map(() => new Set<string>());
  const gradientOut = schedules.map(() => new Set<string>());
  const stash = schedules.map(() => new Set<string>());
  const peakStashed = new Array<number>(p).fill(0);
  const executed: string[][] = schedules.map(() => []);
  const channels = new Map<string, Message[]>();
  const pc = new Array<number>(p).fill(0);
  let messages = 0;

  const fail = (s: number, what: string): never => {
    throw new Error(`stage ${s} op ${pc[s]} (${describe(schedules[s].instructions[pc[s]])}): ${what}`);
  };

  const compute = (s: number, ins: Instruction) => {
    const vs = vsOf(s, ins.chunk);
    const k = key(ins.microbatch, vs);
    if (ins.op === 'forward') {
      if (forwardDone.has(k)) fail(s, 'forward runs twice');
      if (vs > 0) {
        const local = stageOf(vs - 1) === s;
        const have = local ? forwardDone.has(key(ins.microbatch, vs - 1)) : activationIn[s].has(k);
        if (!have) fail(s, 'forward before its input activation arrived');
        activationIn[s].delete(k);
      }
      forwardDone.add(k);
      stash[s].add(k);
      peakStashed[s] = Math.max(peakStashed[s], stash[s].size);
      if (vs < V - 1 && stageOf(vs + 1) !== s) activationOut[s].add(k);
    } else {
      if (backwardDone.has(k)) fail(s, 'backward runs twice');
      if (!stash[s].has(k)) fail(s, 'backward without its stashed forward');
      if (vs < V - 1) {
        const local = stageOf(vs + 1) === s;
        const have = local ? backwardDone.has(key(ins.microbatch, vs + 1)) : gradientIn[s].has(k);
        if (!have) fail(s, 'backward before its output gradient arrived');
        gradientIn[s].delete(k);
      }
      backwardDone.add(k);
      stash[s].delete(k);
      if (vs > 0 && stageOf(vs - 1) !== s) gradientOut[s].add(k);
    }
    executed[s].push(`${ins.op === 'forward' ? 'F' : 'B'}${ins.microbatch}.${ins.chunk}`);
  };

  // What a send carries, checked against what the stage has produced.
  const outgoing = (s: number, ins: Instruction & { peer: number; tag: number }): Message => {
    const vs = vsOf(s, ins.chunk);
    const gradient = ins.op === 'sendGradient';
    const k = key(ins.microbatch, vs);
    const produced = gradient ? gradientOut[s] : activationOut[s];
    if (!produced.delete(k)) fail(s, 'sends something it has not produced (or sends it twice)');
    const consumer = gradient ? vs - 1 : vs + 1;
    if (stageOf(consumer) !== ins.peer)
      fail(s, `sends to stage ${ins.peer}, the consumer is on stage ${stageOf(consumer)}`);
    return { gradient, microbatch: ins.microbatch, producerVs: vs, tag: ins.tag };
  };
  const deliver = (s: number, ins: Instruction & { peer: number; tag: number }, msg: Message) => {
    const gradient = ins.op === 'recvGradient';
    const vs = vsOf(s, ins.chunk);
    const expectedProducer = gradient ? vs + 1 : vs - 1;
    if (msg.gradient !== gradient || msg.microbatch !== ins.microbatch || msg.producerVs !== expectedProducer) {
      fail(
        s,
        `received ${msg.gradient ? 'gradient' : 'activation'} of microbatch ${msg.microbatch} from virtual ` +
          `stage ${msg.producerVs}`,
      );
    }
    if (msg.tag !== ins.tag) fail(s, `tag ${ins.tag} differs from the sender's ${msg.tag}`);
    (gradient ? gradientIn[s] : activationIn[s]).add(key(ins.microbatch, vs));
    messages++;
  };
  const isSend = (i: Instruction): i is Instruction & { peer: number; tag: number } =>
    i.op === 'sendActivation' || i.op === 'sendGradient';
  const isRecv = (i: Instruction): i is Instruction & { peer: number; tag: number } =>
    i.op === 'recvActivation' || i.op === 'recvGradient';

  const done = () => pc.every((i, s) => i >= schedules[s].instructions.length);
  while (!done()) {
    let progressed = false;
    for (let s = 0; s < p; s++) {
      const ins = schedules[s].instructions[pc[s]];
      if (!ins) continue;
      if (ins.op === 'forward' || ins.op === 'backward') {
        compute(s, ins);
        pc[s]++;
        progressed = true;
      } else if (isSend(ins)) {
        if (semantics === 'buffered') {
          const ch = `${s}>${ins.peer}`;
          channels.set(ch, [...(channels.get(ch) ?? []), outgoing(s, ins)]);
          pc[s]++;
          progressed = true;
        } else {
          const peerIns = schedules[ins.peer].instructions[pc[ins.peer]];
          if (peerIns && isRecv(peerIns) && peerIns.peer === s) {
            deliver(ins.peer, peerIns, outgoing(s, ins));
            pc[s]++;
            pc[ins.peer]++;
            progressed = true;
          }
        }
      } else if (isRecv(ins) && semantics === 'buffered') {
        const queue = channels.get(`${ins.peer}>${s}`);
        if (queue && queue.length > 0) {
          deliver(s, ins, queue.shift()!);
          pc[s]++;
          progressed = true;
        }
      }
    }
    if (!progressed) {
      const heads = pc.map((i, s) => `stage ${s}: ${describe(schedules[s].instructions[i])}`);
      throw new Error(`deadlock (${semantics}): ${heads.join('; ')}`);
    }
  }
  for (let s = 0; s < p; s++) {
    if (stash[s].size) throw new Error(`stage ${s} ends with stashed activations ${[...stash[s]].join(',')}`);
    if (activationIn[s].size || gradientIn[s].size) throw new Error(`stage ${s} received data it never used`);
    if (activationOut[s].size || gradientOut[s].size) throw new Error(`stage ${s} produced data it never sent`);
  }
  for (const [ch, q] of channels)
    if (q.length) throw new Error(`channel ${ch} ends with ${q.length} undelivered messages`);
  const expected = m * V;
  if (forwardDone.size !== expected || backwardDone.size !== expected) throw new Error('not every compute op ran');
  return { executed, peakStashed, messages };
}

function describe(i: Instruction | undefined): string {
  if (!i) return 'done';
  return 'peer' in i
    ? `${i.op} mb ${i.microbatch} chunk ${i.chunk} peer ${i.peer}`
    : `${i.op} mb ${i.microbatch} chunk ${i.chunk}`;
}
