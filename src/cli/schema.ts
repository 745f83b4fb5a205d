import type { CommandModule } from 'yargs';
import { UsageError } from '../util/errors.js';

export const schemaCommand: CommandModule = {
  command: 'schema',
  describe: 'not implemented yet (issue 2)',
  handler: () => {
    throw new UsageError('dtrain schema is not implemented yet (issue 2)');
  },
};
