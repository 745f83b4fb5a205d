/**
 * A rank's stack on demand, whatever its language, without changing its program (the agent's side; the
 * signal and the Node half are in runtime/stack-signal.ts):
 *  - Python: the agent's sitecustomize (first on PYTHONPATH) registers faulthandler for STACK_SIGNAL, all
 *    threads, appending to DTRAIN_STACK_FILE, then loads the sitecustomize it shadows. faulthandler
 *    answers from its C signal handler, so a rank asleep or blocked in gloo answers too. It cannot work
 *    under `python -I`, `-E` (PYTHONPATH ignored) or `-S` (no site, so no sitecustomize), nor when the
 *    program installs its own handler for the signal: the rank's answer then says so.
 *  - Node: init() has the addon write the main thread's JS stack (from the diagnostic report) there.
 *  - Native: gdb, only when asked (`dtrain stacks --native`): it stops the process while it reads it.
 * What could not be captured is said per rank, with why.
 */
import { execFile } from 'node:child_process';
import { readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { constants } from 'node:os';
import { basename, join } from 'node:path';
import { makeDirsSync } from '../util/make-dirs.js';
import { readRegularFileSync } from '../util/regular-file.js';
import { STACK_SIGNAL } from '../runtime/stack-signal.js';

export type StackLanguage = 'python' | 'node' | 'native' | 'other';

export interface RankStack {
  rank: number;
  pid: number;
  language: StackLanguage;
  /** the stack as text, most recent call where the language puts it; null when none could be had */
  stack: string | null;
  /** why there is no stack (or what is missing from it); null when complete */
  missing: string | null;
}

/** The longest stack kept per rank: it travels in one agent event. */
export const STACK_MAX_CHARS = 64 * 1024;

/** How long to wait for a rank's answer by default (hang diagnosis has all of 5 s for every node). */
export const STACK_WAIT_MS = 2000;

const signalNumber = constants.signals[STACK_SIGNAL];

const sitecustomize = `# Written by the dtrain agent. On signal ${signalNumber} (${STACK_SIGNAL}) every thread's stack
# is appended to DTRAIN_STACK_FILE (faulthandler, from its C signal handler: a rank blocked in C answers
# too). Then the sitecustomize this one shadows is loaded as before.
def _dtrain_sitecustomize():
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    path = os.environ.get("DTRAIN_STACK_FILE")
    if path:
        try:
            import faulthandler

            out = open(path, "a")
            faulthandler.register(${signalNumber}, file=out, all_threads=True, chain=False)
            globals()["_dtrain_stack_file"] = out
        except Exception:
            pass
    import importlib.machinery
    import importlib.util

    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", sys.path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        # what site.py itself does with a failing sitecustomize
        print("Error in sitecustomize; set PYTHONVERBOSE for traceback:\\n%s: %s" % (type(err).__name__, err),
              file=sys.stderr)


_dtrain_sitecustomize()
`;

/** Writes the sitecustomize into `<dir>/python` and returns that folder (for PYTHONPATH). */
export function writeSitecustomize(dir: string): string {
  const folder = join(dir, 'python');
  makeDirsSync(folder, 0o700);
  writeFileSync(join(folder, 'sitecustomize.py'), sitecustomize, { mode: 0o600 });
  return folder;
}

/** The folder first, then what the worker had. */
export function prependPath(folder: string, inherited: string | undefined): string {
  return inherited ? `${folder}:${inherited}` : folder;
}

export function stackFileFor(dir: string, rank: number): string {
  return join(dir, `rank_${rank}.stack`);
}

/** What runs as `pid`, from its executable's name. */
export function languageOf(pid: number): StackLanguage {
  let exe: string;
  try {
    exe = readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return 'other';
  }
  const name = basename(exe);
  if (/^python[0-9.]*$/.test(name)) return 'python';
  if (name === 'node' || name === 'nodejs' || exe === process.execPath) return 'node';
  return 'other';
}

/** `python -I/-E/-S` (alone or combined, e.g. -IS): the flags that keep the sitecustomize out. */
function pythonFlagsWithoutSite(pid: number): string | null {
  let args: string[];
  try {
    args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(1);
  } catch {
    return null;
  }
  for (const a of args) {
    if (!a.startsWith('-') || a === '-' || a.startsWith('--')) break;
    // letters up to one that takes a value (-c, -m, -W, -X): -IS, -Ic "..." but not -Wignore's "i"
    const letters = a.slice(1).split(/[cmWX]/)[0];
    const flag = [...'IES'].find((f) => letters.includes(f));
    if (flag) return `-${flag}`;
    if (letters.length < a.length - 1) break;
  }
  return null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function sizeOf(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return -1;
  }
}

/** The Node runtime's answer ({state, javascriptStack}) as text; null when it is not (yet) whole JSON. */
export function nodeStackText(raw: string): string | null {
  let doc: { state?: string; javascriptStack?: { message?: string; stack?: string[] } | null };
  try {
    doc = JSON.parse(raw) as typeof doc;
  } catch {
    return null;
  }
  if (doc.state === 'idle')
    return 'main thread idle in the event loop (awaiting I/O, a timer or a collective; no JavaScript running)';
  const js = doc.javascriptStack;
  if (!js) return 'main thread running, no JavaScript stack available';
  // The report writes an anonymous function's frame "at  (file:line:col)"; Error.stack writes "at file:line:col".
  const frames = Array.isArray(js.stack)
    ? js.stack.map((f) => `    ${f.trim().replace(/^at {2}\((.*)\)$/, 'at $1')}`)
    : [];
  return ['main thread running JavaScript:', ...frames].join('\n');
}

/**
 * Signals `pid` (STACK_SIGNAL, ignored by default: harmless to a rank without a handler) and waits up to
 * `waitMs` for its answer in `file`.
 */
export async function captureStack(
  rank: number,
  pid: number,
  file: string,
  waitMs = STACK_WAIT_MS,
): Promise<RankStack> {
  const language = languageOf(pid);
  const base = { rank, pid, language };
  if (language === 'python') {
    const flag = pythonFlagsWithoutSite(pid);
    if (flag)
      return {
        ...base,
        stack: null,
        missing: `python runs with ${flag}: dtrain's sitecustomize (the stack signal) is not loaded`,
      };
  }
  try {
    writeFileSync(file, '', { mode: 0o600 }); // same inode: Python's handler appends to its open file
    process.kill(pid, STACK_SIGNAL);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { ...base, stack: null, missing: code === 'ESRCH' ? 'the process has exited' : `cannot signal it: ${code}` };
  }
  const deadline = Date.now() + waitMs;
  let last = 0;
  while (Date.now() < deadline) {
    await sleep(language === 'python' ? 50 : 20);
    const size = sizeOf(file);
    if (size <= 0) continue;
    let raw: string;
    try {
      raw = readRegularFileSync(file, STACK_MAX_CHARS * 4).toString('utf8');
    } catch {
      continue; // replaced by something that is not a file: wait (and give up at the deadline)
    }
    if (language !== 'python') {
      const text = nodeStackText(raw);
      if (text !== null) return { ...base, language: 'node', stack: text.slice(0, STACK_MAX_CHARS), missing: null };
      continue; // a half-written older format: wait
    }
    // faulthandler writes from the signal handler in one go; an unchanged size means it has finished
    if (size === last) return { ...base, stack: raw.trimEnd().slice(0, STACK_MAX_CHARS), missing: null };
    last = size;
  }
  const why =
    language === 'python'
      ? "no answer: dtrain's sitecustomize did not load (PYTHONPATH replaced?) or the program took over " +
        `${STACK_SIGNAL}`
      : language === 'node'
        ? 'no answer: the runtime was not initialised (init() not called yet) or the main thread is blocked ' +
          'outside JavaScript (try --native)'
        : `no answer: ${basename(safeExe(pid))} is neither Python nor a Node rank using the dtrain runtime ` +
          '(try --native)';
  return { ...base, stack: null, missing: `${why} (waited ${(waitMs / 1000).toFixed(1)}s)` };
}

function safeExe(pid: number): string {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return 'the program';
  }
}

let gdbPath: string | null | undefined;

function findGdb(): string | null {
  if (gdbPath !== undefined) return gdbPath;
  gdbPath = null;
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    try {
      if (statSync(join(dir, 'gdb')).isFile()) return (gdbPath = join(dir, 'gdb'));
    } catch {
      // not here
    }
  }
  return gdbPath;
}

/** Every thread's native stack through gdb (it stops the process while it reads it). */
export function captureNative(rank: number, pid: number, waitMs: number): Promise<RankStack> {
  const base = { rank, pid, language: 'native' as const };
  const gdb = findGdb();
  if (!gdb) return Promise.resolve({ ...base, stack: null, missing: 'gdb is not installed on this node' });
  return new Promise((resolve) => {
    execFile(
      gdb,
      ['-p', String(pid), '-batch', '-nx', '-ex', 'set pagination off', '-ex', 'thread apply all bt'],
      { timeout: waitMs, maxBuffer: 4 * STACK_MAX_CHARS, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        const threads = stdout.split('\n').filter((l) => /^(Thread |#\d+ )/.test(l));
        if (threads.length)
          return resolve({ ...base, stack: threads.join('\n').slice(0, STACK_MAX_CHARS), missing: null });
        const why = err?.killed
          ? `gdb took longer than ${(waitMs / 1000).toFixed(1)}s`
          : (stderr.split('\n').find((l) => /ptrace|denied|not permitted/i.test(l)) ??
              stderr.trim().split('\n').pop()) ||
            'gdb printed no stack';
        resolve({ ...base, stack: null, missing: `gdb: ${why}` });
      },
    );
  });
}
