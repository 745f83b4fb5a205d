/**
 * hang_timeout on the agent's side: which of its ranks made progress. Progress is a collective completed
 * (the rank's flight recorder), any output line, or CPU time (the rank and its descendants,
 * /proc/<pid>/stat utime + stime) above a floor per sample while the recorder shows it inside no op: a
 * rank asleep, or blocked in gloo, uses next to none.
 * A rank that spins outside any collective therefore counts as progressing; collective_timeout names it.
 * Once a rank has reported a step (dist.report, DTRAIN_PROGRESS_FILE), only its reports (which the
 * controller sees in samples) and its completed collectives count: a reporting rank that stops reporting
 * while it still prints or burns CPU is stuck all the same.
 */
import { readFileSync } from 'node:fs';
import { descendantsOfEach } from './process-tree.js';

/** Below this share of a sample interval, CPU time is noise (timer ticks of an idle or waiting rank). */
export const CPU_PROGRESS_SHARE = 0.05;

const ticksPerSecond = 100; // USER_HZ, fixed at 100 by the kernel ABI for /proc

function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime, stime, cutime, cstime: fields 14-17 of stat, 12-15 after "pid (comm) "
    return Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
  } catch {
    return 0;
  }
}

/** CPU ticks of a rank's whole tree now (descendants that exited are counted in their parent's cutime). */
function treeTicks(pid: number, descendants: number[]): number {
  let sum = cpuTicks(pid);
  for (const d of descendants) sum += cpuTicks(d);
  return sum;
}

export class ProgressWatch {
  private readonly progressed = new Set<number>();
  private readonly lastTicks = new Map<number, number>();
  private readonly lastCompleted = new Map<number, number>();
  private readonly sampler: NodeJS.Timeout;
  private readonly reporter: NodeJS.Timeout;

  constructor(
    /** rank → pid of the ranks still running */
    private readonly ranks: () => Map<number, number>,
    report: (ranks: number[]) => void,
    hangTimeoutMs: number,
    /** the rank's flight recorder: ops completed, and whether it is inside one now (null: no recorder) */
    recorder: (rank: number) => { completed: number; waiting: boolean } | null = () => null,
    /** whether the rank has reported a step: then output and CPU time no longer count */
    private readonly reported: (rank: number) => boolean = () => false,
  ) {
    const sampleMs = Math.max(200, Math.min(1000, hangTimeoutMs / 8));
    const floor = (sampleMs / 1000) * ticksPerSecond * CPU_PROGRESS_SHARE;
    this.sampler = setInterval(() => {
      const ranks = this.ranks();
      const trees = descendantsOfEach(ranks.values());
      for (const [rank, pid] of ranks) {
        const now = treeTicks(pid, trees.get(pid) ?? []);
        const before = this.lastTicks.get(rank);
        this.lastTicks.set(rank, now);
        const rec = recorder(rank);
        const done = this.lastCompleted.get(rank);
        if (rec) this.lastCompleted.set(rank, rec.completed);
        if (rec && done !== undefined && rec.completed > done) this.progressed.add(rank);
        // CPU inside a collective wait (a spin, a poll) is not progress
        else if (!rec?.waiting && before !== undefined && now - before > floor && !this.reported(rank))
          this.progressed.add(rank);
      }
    }, sampleMs);
    this.sampler.unref();
    this.reporter = setInterval(
      () => {
        if (!this.progressed.size) return;
        const ranks = [...this.progressed].sort((a, b) => a - b);
        this.progressed.clear();
        report(ranks);
      },
      Math.max(250, Math.min(5000, hangTimeoutMs / 4)),
    );
    this.reporter.unref();
  }

  /** the rank wrote a line */
  output(rank: number): void {
    if (!this.reported(rank)) this.progressed.add(rank);
  }

  stop(): void {
    clearInterval(this.sampler);
    clearInterval(this.reporter);
  }
}
