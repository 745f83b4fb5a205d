import type { CommandModule } from 'yargs';

interface DoctorArgs {
  json?: boolean;
}

export const doctorCommand: CommandModule<object, DoctorArgs> = {
  command: 'doctor',
  describe: 'report what this machine can run: addon, CUDA part, driver, GPUs, NCCL, the launch and scheduler commands',
  builder: (y) => y.option('json', { type: 'boolean', describe: 'print one JSON document on stdout' }),
  handler: async (argv) => {
    const { runDoctor, renderDoctor } = await import('../doctor/report.js');
    const report = runDoctor();
    if (argv.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
    else process.stdout.write(renderDoctor(report));
  },
};
