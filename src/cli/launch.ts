import type { CommandModule } from 'yargs';
import { UsageError } from '../util/errors.js';

export const launchCommand: CommandModule = {
  command: 'launch',
  describe: 'not implemented yet (issue 3)',
  handler: () => {
    throw new UsageError('dtrain launch is not implemented yet (issue 3)');
  },
};
