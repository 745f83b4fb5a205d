import type { CommandModule } from 'yargs';
import { UsageError } from '../util/errors.js';

export const benchCommand: CommandModule = {
  command: 'bench',
  describe: 'not implemented yet (issue 5)',
  handler: () => {
    throw new UsageError('dtrain bench is not implemented yet (issue 5)');
  },
};
