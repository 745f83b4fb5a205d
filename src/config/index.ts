/** The config module's public face: load and validate a job config, or build one from flags. */
export { loadConfig, configFromArgs, saveConfig, schemaLocation, type LoadOptions, type ArgsConfig } from './load.js';
export { configSchema, SCHEMA_ID } from './schema.js';
export { parseDuration, formatDuration } from './duration.js';
export { splitCommand, joinCommand } from './shellwords.js';
export { parseHostfile, parseHostFilter, selectHosts } from './hostfile.js';
export type {
  JobConfig,
  LoadedConfig,
  NodeConfig,
  ParallelismConfig,
  RawConfig,
  ModelConfig,
  SchedulerConfig,
  Schedule,
  Backend,
} from './types.js';
