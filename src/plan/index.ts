/** The plan module's public face: build the rank plan, fill it at launch, print it. */
export { buildPlan, type BuildPlanOptions } from './build.js';
export { workerEnv, maskSecrets, isSecretName, AUTO, WORKER_ENV_KEYS, type LaunchFacts } from './env.js';
export { coordsOf, rankOf, type GridSize, type GridCoords } from './grid.js';
export { estimateMemory, peakInFlight, type ModelShape } from './memory.js';
export { planDocument, renderPlanTable } from './render.js';
export type { Plan, RankPlan, NodePlan, ParallelismPlan, MemoryEstimate } from './types.js';
