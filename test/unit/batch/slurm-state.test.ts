import t from 'tap';
import { parseScontrolJob, stateFromScontrol, TERMINAL_STATES } from '../../../src/batch/slurm-state.js';
import { parseJobId } from '../../../src/batch/submit-script.js';
import { killWaitWarning } from '../../../src/batch/kill-wait.js';
import { slurmTimeToSeconds, pbsWalltime } from '../../../src/batch/batch-time.js';
import { shellWord, shellCommand } from '../../../src/batch/shell-quote.js';
import { StartError } from '../../../src/util/errors.js';

// Real `scontrol show job -o` output from the testbed (Slurm 22.05), shortened.
const failed =
  'JobId=3 JobName=wrap UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901757 Nice=0 ' +
  'Account=(null) QOS=(null) ' +
  'JobState=FAILED Reason=NonZeroExitCode Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=3:0 ' +
  'RunTime=00:00:01 TimeLimit=UNLIMITED Command=/tmp/my job/run.sh WorkDir=/tmp/my job StdOut=/tmp/sl-3.out Power=';

t.test('scontrol -o lines: values with spaces run to the next key', async (t) => {
  const f = parseScontrolJob(failed);
  t.equal(f.JobState, 'FAILED');
  t.equal(f.ExitCode, '3:0');
  t.equal(f.Command, '/tmp/my job/run.sh');
  t.equal(f.WorkDir, '/tmp/my job');
  t.equal(f.Power, '');
  t.same(stateFromScontrol(f), { state: 'FAILED', reason: 'NonZeroExitCode', exitCode: 3, signal: 0, restarts: 0 });
  t.equal(stateFromScontrol(parseScontrolJob('JobId=5 JobState=PENDING Restarts=2'))?.restarts, 2, 'requeued twice');
});

t.test('cancelled and still-running jobs', async (t) => {
  t.same(stateFromScontrol(parseScontrolJob('JobId=4 JobState=CANCELLED Reason=None ExitCode=0:15')), {
    state: 'CANCELLED',
    exitCode: 0,
    signal: 15,
  });
  t.same(stateFromScontrol(parseScontrolJob('JobId=5 JobState=PENDING Reason=Resources ExitCode=0:0')), {
    state: 'PENDING',
    reason: 'Resources',
    exitCode: 0,
    signal: 0,
  });
  t.equal(stateFromScontrol({}), undefined);
  for (const s of ['CANCELLED', 'TIMEOUT', 'NODE_FAIL', 'PREEMPTED', 'COMPLETED', 'FAILED'])
    t.ok(TERMINAL_STATES.has(s), s);
  for (const s of ['PENDING', 'RUNNING', 'COMPLETING', 'CONFIGURING', 'REQUEUED', 'SUSPENDED'])
    t.notOk(TERMINAL_STATES.has(s), s);
});

t.test('job ids from sbatch --parsable and qsub', async (t) => {
  t.equal(parseJobId('slurm', '1234\n'), '1234');
  t.equal(parseJobId('slurm', '1234;cluster\n'), '1234');
  t.equal(parseJobId('pbs', '5678.pbs-server\n'), '5678.pbs-server');
  t.throws(() => parseJobId('slurm', 'sbatch: error: something\n'), StartError);
});

t.test('shutdown_grace must be below KillWait', async (t) => {
  t.equal(killWaitWarning(20_000, 30_000, false), undefined);
  t.match(killWaitWarning(30_000, 30_000, false), /shutdown_grace \(30s\) is not below the cluster's KillWait \(30s\)/);
  t.match(killWaitWarning(60_000, 30_000, true), /Slurm's default KillWait/);
});

t.test('time limits', async (t) => {
  t.equal(slurmTimeToSeconds('90'), 5400);
  t.equal(slurmTimeToSeconds('10:30'), 630);
  t.equal(slurmTimeToSeconds('02:00:00'), 7200);
  t.equal(slurmTimeToSeconds('1-00:00:00'), 86400);
  t.equal(slurmTimeToSeconds('2-3'), 2 * 86400 + 3 * 3600);
  t.equal(slurmTimeToSeconds('1-2:30'), 86400 + 2 * 3600 + 30 * 60);
  t.equal(pbsWalltime(90061), '25:01:01');
});

t.test('shell words', async (t) => {
  t.equal(shellWord('/a/b-c_d.yaml'), '/a/b-c_d.yaml');
  t.equal(shellWord('a b'), "'a b'");
  t.equal(shellWord("it's"), `'it'\\''s'`);
  t.equal(shellWord('$HOME'), "'$HOME'");
  t.equal(shellWord(''), "''");
  t.equal(shellCommand(['node', 'x y']), "node 'x y'");
});

t.test('the default grace is shortened to fit KillWait; a chosen one is warned about', async (t) => {
  const { fitGrace } = await import('../../../src/batch/kill-wait.js');
  t.same(fitGrace(10_000, true, 30_000, false), {});
  t.same(fitGrace(30_000, false, 30_000, true), { overrideMs: 25_000 });
  t.same(fitGrace(30_000, false, 4_000, false), { overrideMs: 1_000 });
  t.match(fitGrace(60_000, true, 30_000, false), { warning: /not below the cluster's KillWait/ });
});
