/**
 * The schedule as data for people and scripts: the `dtrain schedule --json` document and the simulated
 * timeline both pictures are drawn from.
 */
import { computeOps, opLabel, type PipelinePlan } from './schedule.js';

export interface ScheduleReport {
  kind: string;
  stages: number;
  microbatches: number;
  virtual_stages: number;
  per_stage: { stage: number; order: string[]; peak_in_flight: number }[];
  bubble_fraction: number;
}

export function scheduleReport(plan: PipelinePlan): ScheduleReport {
  const chunked = plan.shape.kind === 'interleaved-1f1b';
  return {
    kind: plan.shape.kind,
    stages: plan.shape.stages,
    microbatches: plan.shape.microbatches,
    virtual_stages: plan.shape.virtualStages,
    per_stage: plan.schedules.map((s) => ({
      stage: s.stage,
      order: computeOps(s).map((o) => opLabel(o, chunked)),
      peak_in_flight: s.peakInFlight,
    })),
    bubble_fraction: plan.timeline.bubbleFraction,
  };
}

export function describeShape(plan: PipelinePlan): string {
  const { kind, stages, microbatches, virtualStages } = plan.shape;
  const chunks = kind === 'interleaved-1f1b' ? `, ${virtualStages} chunks per stage` : '';
  return (
    `${kind}: ${stages} stage${stages === 1 ? '' : 's'}, ${microbatches} ` +
    `microbatch${microbatches === 1 ? '' : 'es'}${chunks}`
  );
}
