import type { CommandModule } from 'yargs';
import { UsageError } from '../util/errors.js';

export const validateCommand: CommandModule = {
  command: 'validate',
  describe: 'not implemented yet (issue 2)',
  handler: () => {
    throw new UsageError('dtrain validate is not implemented yet (issue 2)');
  },
};
