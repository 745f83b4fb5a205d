import type { CommandModule } from 'yargs';
import { UsageError } from '../util/errors.js';

export const agentCommand: CommandModule = {
  command: 'agent',
  describe: 'not implemented yet (issue 3)',
  handler: () => {
    throw new UsageError('dtrain agent is not implemented yet (issue 3)');
  },
};
