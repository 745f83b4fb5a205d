// pipelineSchedule and the Pipeline executor.
export * from './types.js';
export {
  pipelineSchedule,
  planPipeline,
  peakInFlight,
  opLabel,
  computeOps,
  messageTag,
  type PipelinePlan,
} from './schedule.js';
export { simulateTimeline, defaultDurations, type Timeline, type TimedOp, type OpDurations } from './timeline.js';
export {
  Pipeline,
  PipelineError,
  scheduleShapeFromEnv,
  type PipelineOptions,
  type StepResult,
  type StepOptions,
  type GradientReadiness,
  type StageOutput,
  type Stashed,
  type PipelineOpRecord,
  type PipelineArray,
} from './executor.js';
