/**
 * What a run's control server answers, in one table (control-server.ts serves it on the run's Unix socket
 * and, with `monitor`, on TCP). A new endpoint is one more entry here; what it needs from the controller
 * goes into ControlContext.
 */
import type { ParallelismPlan } from '../plan/types.js';
import { jsonReply, type Routes } from './control-server.js';
import { dashboardPage } from './dashboard.js';
import { METRICS_CONTENT_TYPE, renderMetrics } from './metrics.js';
import type { RunStatus } from './run-status.js';

export interface ControlContext {
  status: RunStatus;
  /** the job's layout: the dashboard draws the planned pipeline schedule from it */
  parallelism?: ParallelismPlan;
}

export function controlRoutes(ctx: ControlContext): Routes {
  let pipelineSvg: string | undefined;
  return {
    'GET /': () => ({ type: 'text/html; charset=utf-8', body: dashboardPage(ctx.status.runId) }),
    'GET /api/status': () => jsonReply(ctx.status.doc()),
    'GET /api/history': () => jsonReply({ step_time: ctx.status.history }),
    'GET /metrics': () => ({ type: METRICS_CONTENT_TYPE, body: renderMetrics(ctx.status) }),
    'GET /api/pipeline.svg': async () => {
      const p = ctx.parallelism;
      if (!p || p.pipeline < 2) return jsonReply({ error: 'not a pipeline job' }, 404);
      if (pipelineSvg === undefined) {
        const { planPipeline } = await import('../runtime/pipeline/schedule.js');
        const { renderTimelineSvg } = await import('../runtime/pipeline/timeline-svg.js');
        pipelineSvg = renderTimelineSvg(
          planPipeline({
            kind: p.schedule,
            stages: p.pipeline,
            microbatches: p.microbatches,
            virtualStages: p.virtual_stages,
          }),
        );
      }
      return { type: 'image/svg+xml', body: pipelineSvg };
    },
  };
}
