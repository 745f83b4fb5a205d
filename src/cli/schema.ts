import type { CommandModule } from 'yargs';

export const schemaCommand: CommandModule = {
  command: 'schema',
  describe: 'print the config JSON Schema (for editors: # yaml-language-server: $schema=...)',
  handler: async () => {
    const { configSchema } = await import('../config/schema.js');
    process.stdout.write(JSON.stringify(configSchema, null, 2) + '\n');
  },
};
