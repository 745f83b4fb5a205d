import type { CommandModule } from 'yargs';
import { UsageError } from '../util/errors.js';

export const submitCommand: CommandModule = {
  command: 'submit',
  describe: 'not implemented yet (issue 9)',
  handler: () => {
    throw new UsageError('dtrain submit is not implemented yet (issue 9)');
  },
};
