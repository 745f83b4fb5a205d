import type { CommandModule } from 'yargs';
import { UsageError } from '../util/errors.js';

export const scheduleCommand: CommandModule = {
  command: 'schedule',
  describe: 'not implemented yet (issue 8)',
  handler: () => {
    throw new UsageError('dtrain schedule is not implemented yet (issue 8)');
  },
};
