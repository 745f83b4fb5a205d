// Reading a run's status document (a status.json, a controller's reply): JSON of another shape, or no JSON
// at all, is one line naming the field or the place, exit 2; the text itself is never quoted back.
import t from 'tap';
import { parseStatusDoc } from '../../../src/launch/run-query.js';
import { RunStatus, statusDocProblem } from '../../../src/launch/run-status.js';
import { DtrainError } from '../../../src/util/errors.js';
import { twoRankPlan } from '../../helpers/run-plan.js';

const plan = twoRankPlan();

/** A document as a controller writes it (JSON round trip: what a reader gets). */
function realDoc(): Record<string, unknown> {
  const s = new RunStatus('job-1', '/logs/job-1', plan);
  s.onEvent({
    type: 'sample',
    node_rank: 0,
    attempt: 0,
    ranks: [{ rank: 0, pid: 7, cpu_percent: 50, rss_bytes: 1 << 20, last_output_age_s: 1, step: 3, step_s: 0.2 }],
  });
  return JSON.parse(JSON.stringify(s.doc())) as Record<string, unknown>;
}

const say = (why: string, where: string) => `f.json${where}: ${why}`;

/** The error parseStatusDoc throws for `text` (exit 2), as [message]. */
function refusal(text: string): { message: string; exitCode: number } | undefined {
  try {
    parseStatusDoc(text, say);
    return undefined;
  } catch (err) {
    if (!(err instanceof DtrainError)) throw err;
    return { message: err.message, exitCode: err.exitCode };
  }
}

t.test('a controller-written document is one; its optional fields may be absent', async (t) => {
  const doc = realDoc();
  t.equal(statusDocProblem(doc), undefined);
  t.same(parseStatusDoc(JSON.stringify(doc), say), doc);
  const { monitor_url: _m, updated_at: _u, membership_changes: _c, log_dir: _l, ...older } = doc;
  t.equal(statusDocProblem(older), undefined, 'fields no reader uses are not required');
});

t.test('JSON of another shape: not a status document, naming the first field that is off', async (t) => {
  const doc = realDoc();
  const ranks = doc.ranks as Record<string, unknown>[];
  const cases: [unknown, string][] = [
    [{ version: 1 }, 'no run_id'],
    [{}, 'no run_id'],
    [[], 'the document is not an object'],
    [null, 'the document is not an object'],
    [42, 'the document is not an object'],
    [{ ...doc, nodes: 5 }, 'nodes is not a list'],
    [{ ...doc, nodes: [{}] }, 'no nodes[0].node_rank'],
    [{ ...doc, stragglers: ['1'] }, 'stragglers[0] is not a number'],
    [{ ...doc, ranks: ['a', 'b'] }, 'ranks[0] is not an object'],
    [{ ...doc, ranks: [ranks[0], { ...ranks[1], cpu_percent: '5' }] }, 'ranks[1].cpu_percent is not a number'],
    [{ ...doc, ranks: [{ ...ranks[0], step_s: null }] }, 'ranks[0].step_s is not a number'],
    [{ ...doc, monitor_url: 5 }, 'monitor_url is not a string'],
  ];
  for (const [v, problem] of cases) {
    t.equal(statusDocProblem(v), problem, JSON.stringify(v).slice(0, 60));
    t.same(refusal(JSON.stringify(v)), { message: `f.json: not a dtrain status document (${problem})`, exitCode: 2 });
  }
});

t.test('text that is not JSON: said so, where V8 knows the place, never quoting the text', async (t) => {
  const secret = 'hf_SECRETVALUE50abcdefghijklmnopqrstuvwxyz';
  const cases: [string, string][] = [
    [secret + '\n', ''],
    [`{"token": "${secret}",}`, ':1:56'],
    [`{"run_id": "x",\n "token": ${secret}}`, ''],
    [`{\n  "token": "${secret}"\n  x}`, ':3:3'],
    ['', ''],
    ['"tok_1', ':1:7'],
  ];
  for (const [text, where] of cases) {
    const r = refusal(text);
    t.equal(r?.exitCode, 2, JSON.stringify(text));
    t.match(r?.message, new RegExp(`^f\\.json${where}: not valid JSON, so not a dtrain status document$`));
    t.notMatch(r?.message, /SECRET|tok_|token|"/, 'no byte of the file');
  }
});
