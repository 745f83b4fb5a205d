/**
 * What a run's control server answers, in one table (control-server.ts serves it on the run's Unix socket
 * and, with `monitor`, on TCP). A new endpoint is one more entry here; what it needs from the controller
 * goes into ControlContext.
 */
import { jsonReply, type Routes } from './control-server.js';
import { METRICS_CONTENT_TYPE, renderMetrics } from './metrics.js';
import type { RunStatus } from './run-status.js';

export interface ControlContext {
  status: RunStatus;
}

export function controlRoutes(ctx: ControlContext): Routes {
  return {
    'GET /api/status': () => jsonReply(ctx.status.doc()),
    'GET /api/history': () => jsonReply({ step_time: ctx.status.history }),
    'GET /metrics': () => ({ type: METRICS_CONTENT_TYPE, body: renderMetrics(ctx.status) }),
  };
}
