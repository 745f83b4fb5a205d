/**
 * DeepSpeed's host selection: the hostfile ("<host> slots=<n>" per line, '#' comments) and the
 * include/exclude filters ("worker-0:0,2@worker-1": hosts joined by '@', optional ':slot,slot'). As in
 * DeepSpeed, a slot or host named again is selected once: "w:1,1" is w's slot 1, "w:1@w:0,1" its slots 0 and 1.
 */
import { HOST_NAME_PATTERN, HOST_NAME_RULE } from './host-name.js';
import { MAX_NODES, MAX_PROCS_PER_NODE } from './limits.js';
import { didYouMean } from './suggest.js';

export interface HostEntry {
  host: string;
  slots: number;
  /** 1-based line in the hostfile */
  line: number;
}

export interface TextProblem {
  line: number;
  col: number;
  message: string;
}

const hostName = new RegExp(HOST_NAME_PATTERN);

export function parseHostfile(text: string): { hosts: HostEntry[]; problems: TextProblem[] } {
  const hosts: HostEntry[] = [];
  const problems: TextProblem[] = [];
  const seen = new Map<string, number>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    const content = raw.replace(/#.*/, '');
    if (!content.trim()) return;
    const m = /^(\s*)(\S+)(?:(\s+)(\S+))?(\s+(\S.*))?\s*$/.exec(content)!;
    const [, lead, host, gap, field, , rest] = m;
    const hostCol = lead.length + 1;
    const fieldCol = hostCol + host.length + (gap?.length ?? 0);
    if (field === undefined) {
      problems.push({ line, col: hostCol + host.length, message: `expected "${host} slots=<n>"` });
      return;
    }
    if (!hostName.test(host)) {
      problems.push({ line, col: hostCol, message: `host ${JSON.stringify(host)} ${HOST_NAME_RULE}` });
      return;
    }
    const slots = /^slots=(.*)$/.exec(field);
    if (!slots) {
      problems.push({ line, col: fieldCol, message: `expected slots=<n> after the host name, got "${field}"` });
      return;
    }
    if (!/^[1-9][0-9]*$/.test(slots[1]) || Number(slots[1]) > MAX_PROCS_PER_NODE) {
      problems.push({
        line,
        col: fieldCol + 6,
        message: `slots must be an integer from 1 to ${MAX_PROCS_PER_NODE}, got "${slots[1]}"`,
      });
      return;
    }
    if (rest !== undefined) {
      problems.push({
        line,
        col: content.indexOf(rest, fieldCol - 1 + field.length) + 1,
        message: `unexpected "${rest.trim()}" after slots=${slots[1]}`,
      });
      return;
    }
    // host names are case-insensitive (DNS): Node-A and node-a are one machine
    const first = seen.get(host.toLowerCase());
    if (first !== undefined) {
      problems.push({ line, col: hostCol, message: `host "${host}" is already listed at line ${first}` });
      return;
    }
    seen.set(host.toLowerCase(), line);
    if (hosts.length === MAX_NODES) {
      // said once, at the first host past the limit
      if (seen.size === MAX_NODES + 1)
        problems.push({ line, col: hostCol, message: `more than ${MAX_NODES} hosts (the limit of nodes in a job)` });
      return;
    }
    hosts.push({ host, slots: Number(slots[1]), line });
  });
  return { hosts, problems };
}

export interface FilterEntry {
  host: string;
  /** selected slots; undefined: the whole host */
  slots?: number[];
  /** 0-based offset of the host name in the filter text */
  offset: number;
}

/** Problems carry `offset`: the 0-based character in the filter text they are about. */
export interface FilterProblem {
  offset: number;
  message: string;
}

export function parseHostFilter(text: string): { entries: FilterEntry[]; problems: FilterProblem[] } {
  const entries: FilterEntry[] = [];
  const problems: FilterProblem[] = [];
  let offset = 0;
  for (const part of text.split('@')) {
    const at = offset;
    offset += part.length + 1;
    const [host, slotText, ...more] = part.split(':');
    if (!host.trim()) {
      problems.push({ offset: at, message: 'empty host name (entries are "host" or "host:slot,slot", joined by "@")' });
      continue;
    }
    if (host !== host.trim()) {
      problems.push({ offset: at, message: `host name "${host}" has spaces around it` });
      continue;
    }
    if (more.length) {
      problems.push({ offset: at + host.length + 1 + slotText.length, message: 'one ":" per host: "host:slot,slot"' });
      continue;
    }
    // host names are case-insensitive (DNS): Node-A and node-a are one machine, so spell it one way
    const earlier = entries.find((e) => e.host.toLowerCase() === host.toLowerCase());
    if (earlier && earlier.host !== host) {
      problems.push({ offset: at, message: `host "${host}" appears twice` });
      continue;
    }
    if (slotText === undefined) {
      // as in DeepSpeed, a host named again adds up with its earlier mention: here to the whole host
      if (earlier) delete earlier.slots;
      else entries.push({ host, offset: at });
      continue;
    }
    const slots: number[] = [];
    let slotOffset = at + host.length + 1;
    let ok = true;
    for (const s of slotText.split(',')) {
      if (!/^[0-9]+$/.test(s)) {
        problems.push({ offset: slotOffset, message: `slot must be a number, got "${s}"` });
        ok = false;
      } else if (!slots.includes(Number(s))) slots.push(Number(s)); // as DeepSpeed: a repeated slot counts once
      slotOffset += s.length + 1;
    }
    if (!ok) continue;
    if (!earlier) entries.push({ host, slots, offset: at });
    else if (earlier.slots) earlier.slots = [...new Set([...earlier.slots, ...slots])].sort((a, b) => a - b);
  }
  return { entries, problems };
}

export interface SelectableNode {
  host: string;
  /** known slot count, if any */
  slots?: number;
}

export interface Selection {
  /** index into the input nodes */
  index: number;
  /** selected slot indices when only part of the node is used; undefined: the whole node */
  slotList?: number[];
}

/**
 * Applies include (keep only these) or exclude (drop these) to nodes in order. Names not among the nodes
 * and slots beyond a node's slot count are problems, with a suggestion.
 */
export function selectHosts(
  nodes: SelectableNode[],
  filter: FilterEntry[],
  mode: 'include' | 'exclude',
  source: string,
): { selected: Selection[]; problems: FilterProblem[] } {
  const problems: FilterProblem[] = [];
  const byHost = new Map(nodes.map((n, i) => [n.host, i]));
  const chosen = new Map<number, FilterEntry>();
  for (const e of filter) {
    const index = byHost.get(e.host);
    if (index === undefined) {
      problems.push({
        offset: e.offset,
        message: `"${e.host}" is not in the ${source}${didYouMean(e.host, byHost.keys())}`,
      });
      continue;
    }
    const known = nodes[index].slots;
    const bad = known === undefined ? [] : (e.slots ?? []).filter((s) => s >= known);
    if (bad.length) {
      problems.push({ offset: e.offset, message: `"${e.host}" has slots 0-${known! - 1}, no slot ${bad.join(', ')}` });
      continue;
    }
    chosen.set(index, e);
  }
  const selected: Selection[] = [];
  nodes.forEach((n, index) => {
    const e = chosen.get(index);
    if (mode === 'include') {
      if (e) selected.push({ index, slotList: e.slots });
      return;
    }
    if (!e) return void selected.push({ index });
    if (!e.slots) return; // the whole host is excluded
    if (n.slots === undefined) {
      problems.push({
        offset: e.offset,
        message: `"${n.host}" has no known slot count, so single slots cannot be excluded (give it slots)`,
      });
      return;
    }
    const keep = [...Array(n.slots).keys()].filter((s) => !e.slots!.includes(s));
    if (keep.length) selected.push({ index, slotList: keep });
  });
  return { selected, problems };
}
