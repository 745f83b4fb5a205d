import type { CommandModule } from 'yargs';
import { UsageError } from '../util/errors.js';

export const doctorCommand: CommandModule = {
  command: 'doctor',
  describe: 'not implemented yet (issue 6)',
  handler: () => {
    throw new UsageError('dtrain doctor is not implemented yet (issue 6)');
  },
};
