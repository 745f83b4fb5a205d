/** The plan module's public face: build the rank plan, print it (the agent fills it at launch: fillAtLaunch). */
export { buildPlan, type BuildPlanOptions } from './build.js';
export { maskSecrets, isSecretName } from './env.js';
export { AUTO, WORKER_ENV, fillAtLaunch, type LaunchFacts } from '../runtime/worker-env-table.js';
export { coordsOf, rankOf, type GridSize, type GridCoords } from './grid.js';
export { estimateMemory, peakInFlight, type ModelShape } from './memory.js';
export { planDocument, renderPlanTable } from './render.js';
export { ElasticPlanError, nodesById, planAttempt, reachableWorlds, type AttemptPlan } from './elastic.js';
export type { Plan, RankPlan, NodePlan, ParallelismPlan, MemoryEstimate } from './types.js';
