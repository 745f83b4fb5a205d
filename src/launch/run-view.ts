/**
 * A run made visible while it runs: its RunStatus, the control server on a Unix socket in the run registry,
 * the registry entry, `<log_dir>/status.json` refreshed every STATUS_FILE_INTERVAL_MS, and the optional
 * TCP monitor. The controller opens it before the nodes start and closes it when the job ends.
 */
import { readTokenFile } from '../config/token-file.js';
import type { MonitorConfig } from '../config/types.js';
import type { Plan } from '../plan/types.js';
import { UsageError } from '../util/errors.js';
import { controlRoutes } from './control-routes.js';
import { ControlServer, type Routes } from './control-server.js';
import { controlSocketPath, registerRun, writeStatusFile } from './run-registry.js';
import { RunStatus, STATUS_FILE_INTERVAL_MS } from './run-status.js';

export interface MonitorOptions {
  host: string;
  /** 0: a free port */
  port: number;
  token?: string;
}

/** The monitor's settings, its token read from token_file (bad file: exit 2, before anything starts). */
export function monitorOptions(config: MonitorConfig): MonitorOptions {
  const opts: MonitorOptions = { host: config.host, port: config.port === 'auto' ? 0 : config.port };
  if (config.token_file === undefined) return opts;
  const read = readTokenFile(config.token_file);
  if (read.problem !== undefined) throw new UsageError(`monitor.token_file ${config.token_file}: ${read.problem}`);
  const { token } = read;
  return { ...opts, token };
}

export class RunView {
  private timer: NodeJS.Timeout | undefined;
  private readonly servers: ControlServer[] = [];
  private unregister: () => void = () => {};

  private constructor(readonly status: RunStatus) {}

  static async open(opts: {
    runId: string;
    logDir: string;
    plan: Pick<Plan, 'world_size' | 'nodes' | 'ranks'> & Partial<Pick<Plan, 'parallelism'>>;
    monitor?: MonitorOptions;
    /** routes served on the run's Unix socket only, never on the monitor's TCP port (e.g. stacks) */
    localRoutes?: Routes;
    /** a warning line (the view is a convenience: a failure to serve it never fails the job) */
    warn: (line: string) => void;
  }): Promise<RunView> {
    const view = new RunView(new RunStatus(opts.runId, opts.logDir, opts.plan));
    const routes = controlRoutes({
      status: view.status,
      ...(opts.plan.parallelism ? { parallelism: opts.plan.parallelism } : {}),
    });
    if (opts.monitor) {
      try {
        const server = await ControlServer.listenTcp(opts.monitor.host, opts.monitor.port, routes, opts.monitor.token);
        view.servers.push(server);
        const host = opts.monitor.host.includes(':') ? `[${opts.monitor.host}]` : opts.monitor.host;
        view.status.monitorUrl = `http://${host}:${server.port}/`;
      } catch (err) {
        opts.warn(`monitor: cannot listen on ${opts.monitor.host}:${opts.monitor.port}: ${(err as Error).message}`);
      }
    }
    try {
      const socket = controlSocketPath(opts.runId);
      view.servers.push(await ControlServer.listenUnix(socket, { ...routes, ...opts.localRoutes }));
      view.unregister = registerRun({
        run_id: opts.runId,
        pid: process.pid,
        started_at: view.status.startedAt,
        log_dir: opts.logDir,
        socket,
        ...(view.status.monitorUrl ? { monitor_url: view.status.monitorUrl } : {}),
      });
    } catch (err) {
      opts.warn(`dtrain status will not find this run: ${(err as Error).message}`);
    }
    view.writeFile();
    view.timer = setInterval(() => view.writeFile(), STATUS_FILE_INTERVAL_MS);
    view.timer.unref();
    return view;
  }

  /** The final state goes to status.json; the registry entry and the servers go away. */
  async close(ok: boolean): Promise<void> {
    clearInterval(this.timer);
    this.status.finished(ok);
    // The monitor closes with the run: the final document names no address that no longer answers.
    this.status.monitorUrl = undefined;
    this.writeFile();
    this.unregister();
    await Promise.all(this.servers.map((s) => s.close()));
  }

  private writeFile(): void {
    try {
      writeStatusFile(this.status.logDir, this.status.doc());
    } catch {
      // a full or read-only log disk: the per-rank logs will say so louder
    }
  }
}
