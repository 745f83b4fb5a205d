import type { CommandModule } from 'yargs';
import { launchCommand } from './launch.js';
import { validateCommand } from './validate.js';
import { submitCommand } from './submit.js';
import { scheduleCommand } from './schedule.js';
import { benchCommand } from './bench.js';
import { doctorCommand } from './doctor.js';
import { schemaCommand } from './schema.js';
import { agentCommand } from './agent.js';
import { statusCommand } from './status.js';
import { topCommand } from './top.js';
import { stacksCommand } from './stacks.js';

/** Every command, each defined in its own file; their heavy modules load lazily inside handlers. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const commands: CommandModule<object, any>[] = [
  launchCommand,
  validateCommand,
  submitCommand,
  scheduleCommand,
  benchCommand,
  doctorCommand,
  schemaCommand,
  agentCommand,
  statusCommand,
  topCommand,
  stacksCommand,
];
