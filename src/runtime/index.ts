// The package's public entry (`import { init } from 'dtrain'`): re-exports each runtime part.
export * from './types.js';
export * from './init.js';
export { CommitRefusedError } from './checkpoints.js';
export { RESIZE_EXIT_CODE } from './commits.js';
export { writeFileDurably } from './durable-file.js';
export { makeDirs } from '../util/make-dirs.js';
export * from './worker-env.js';
export * from './optim/index.js';
export * from './layers/index.js';
export * from './pipeline/index.js';
export { DeviceBuffer } from './device/device-buffer.js';
export type { DeviceBufferDescription, DeviceMemory } from './device/device-buffer.js';
export { deviceAdamwStep } from './device/adamw.js';
export { NcclOpError, type NcclGroup } from './nccl/group.js';
