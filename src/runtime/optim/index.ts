// ShardedAdam: ZeRO stage 1/2 AdamW over a data group, with resharding checkpoints.
export { ShardedAdam } from './sharded-adam.js';
export type { ShardedAdamOptions, OptimizerMemory, ParamDType, BufferAllocator } from './sharded-adam.js';
export { GradReduction } from './grad-reduction.js';
export type { BucketTiming, OverlapSummary, ReductionBucket } from './grad-reduction.js';
export { CheckpointError, OptimizerUsageError } from './errors.js';
export type { Manifest, ManifestFile, Hyperparameters } from './checkpoint.js';
export { partition, shardRange } from './partition.js';
export type { Partition, Range } from './partition.js';
