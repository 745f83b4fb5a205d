// The example's pure parts: the MLP's backward against finite differences, a model split into stages computing
// exactly what the whole model computes, the data order resuming where it stopped, the command line.
import t from 'tap';
import { parseTrainArgs, TrainUsageError } from '../../../src/examples/train/args.js';
import { BatchOrder, gather, makeDataset } from '../../../src/examples/train/data.js';
import { layerSpecs, partitionLayers, softmaxCrossEntropy, StageModel } from '../../../src/examples/train/mlp.js';
import { Rng } from '../../../src/examples/train/rng.js';

const spec = { inputs: 5, hidden: 7, layers: 4, classes: 3 };

function lossOf(model: StageModel, x: Float32Array, y: Int32Array, rows: number): number {
  return softmaxCrossEntropy(model.forward(x, rows).output, y, rows, spec.classes, 1).loss;
}

t.test('backward matches central finite differences of the mean loss', async (t) => {
  const model = new StageModel(layerSpecs(spec), 7);
  const data = makeDataset({ seed: 3, inputs: spec.inputs, classes: spec.classes, train: 6, eval: 1 });
  const rows = 6;
  const { output, saved } = model.forward(data.train.x, rows);
  const { grad } = softmaxCrossEntropy(output, data.train.y, rows, spec.classes, 1 / rows);
  model.grads.fill(0);
  model.backward(grad, saved);
  const rng = Rng.fromSeed(99);
  let worst = 0;
  for (let k = 0; k < 40; k++) {
    const i = rng.below(model.params.length);
    const keep = model.params[i];
    const h = 1e-2;
    model.params[i] = keep + h;
    const up = lossOf(model, data.train.x, data.train.y, rows);
    model.params[i] = keep - h;
    const down = lossOf(model, data.train.x, data.train.y, rows);
    model.params[i] = keep;
    const fd = (up - down) / (2 * h);
    worst = Math.max(worst, Math.abs(fd - model.grads[i]) / Math.max(1e-2, Math.abs(fd)));
  }
  t.ok(worst < 2e-2, `worst relative gradient error ${worst}`);
});

t.test(
  "onLayerDone(k) comes before layer k's input-gradient product (its reduction starts one GEMM sooner)",
  async (t) => {
    const model = new StageModel(layerSpecs(spec), 7);
    const data = makeDataset({ seed: 3, inputs: spec.inputs, classes: spec.classes, train: 6, eval: 1 });
    const rows = 6;
    const { output, saved } = model.forward(data.train.x, rows);
    const { grad } = softmaxCrossEntropy(output, data.train.y, rows, spec.classes, 1 / rows);
    const done: number[] = [];
    // the input product reads layer 0's weights: zeroed in the callback, they zero the input gradient only if the
    // callback ran first
    const gx = model.backward(grad, saved, (k) => {
      done.push(k);
      if (k === 0) model.layers[0].w.fill(0);
    })!;
    t.same(done, [3, 2, 1, 0], 'last layer first, each once');
    t.ok(
      gx.every((v) => v === 0),
      'input gradient computed after onLayerDone(0)',
    );
  },
);

// The same MLP written out in float64 (what the example computed before its layers moved to the addon's kernels).
function reference64(model: StageModel, x: Float32Array, y: Int32Array, rows: number) {
  const acts: Float64Array[] = [Float64Array.from(x)];
  for (const l of model.layers) {
    const { inputs: nin, outputs: nout, relu } = l.spec;
    const h = acts[acts.length - 1];
    const out = new Float64Array(rows * nout);
    for (let r = 0; r < rows; r++) {
      for (let o = 0; o < nout; o++) {
        let s = l.b[o];
        for (let i = 0; i < nin; i++) s += h[r * nin + i] * l.w[o * nin + i];
        out[r * nout + o] = relu && s < 0 ? 0 : s;
      }
    }
    acts.push(out);
  }
  const classes = model.outputs;
  const logits = acts[acts.length - 1];
  let loss = 0;
  let g = new Float64Array(rows * classes);
  for (let r = 0; r < rows; r++) {
    const row = logits.subarray(r * classes, (r + 1) * classes);
    const max = Math.max(...row);
    const sum = row.reduce((t, v) => t + Math.exp(v - max), 0);
    loss += Math.log(sum) + max - row[y[r]];
    for (let c = 0; c < classes; c++) g[r * classes + c] = (Math.exp(row[c] - max) / sum - (c === y[r] ? 1 : 0)) / rows;
  }
  const grads: Float64Array[] = [];
  for (let k = model.layers.length - 1; k >= 0; k--) {
    const { inputs: nin, outputs: nout, relu } = model.layers[k].spec;
    const w = model.layers[k].w;
    if (relu) g = g.map((v, i) => (acts[k + 1][i] > 0 ? v : 0));
    const gw = new Float64Array(nout * nin + nout);
    const gx = new Float64Array(rows * nin);
    for (let r = 0; r < rows; r++) {
      for (let o = 0; o < nout; o++) {
        const go = g[r * nout + o];
        gw[nout * nin + o] += go;
        for (let i = 0; i < nin; i++) {
          gw[o * nin + i] += go * acts[k][r * nin + i];
          gx[r * nin + i] += go * w[o * nin + i];
        }
      }
    }
    grads.unshift(gw);
    g = gx;
  }
  return { loss: loss / rows, grads: grads.flatMap((a) => Array.from(a)) };
}

t.test('the kernel-backed layers compute what the float64 reference computes, to float rounding', async (t) => {
  // the quickstart's widths at a small batch, and odd ones
  for (const m of [
    { inputs: 32, hidden: 96, layers: 6, classes: 8, rows: 16 },
    { inputs: 5, hidden: 7, layers: 4, classes: 3, rows: 13 },
  ]) {
    const model = new StageModel(layerSpecs(m), 21);
    const data = makeDataset({ seed: 4, inputs: m.inputs, classes: m.classes, train: m.rows, eval: 1 });
    const { output, saved } = model.forward(data.train.x, m.rows);
    const { loss, grad } = softmaxCrossEntropy(output, data.train.y, m.rows, m.classes, 1 / m.rows);
    model.grads.fill(0);
    model.backward(grad, saved);
    const want = reference64(model, data.train.x, data.train.y, m.rows);
    t.ok(Math.abs(loss - want.loss) <= 1e-5 * want.loss, `loss ${loss}, float64 ${want.loss}`);
    const scale = Math.max(...want.grads.map(Math.abs));
    let worst = 0;
    want.grads.forEach((v, i) => (worst = Math.max(worst, Math.abs(model.grads[i] - v) / scale)));
    t.ok(worst < 1e-5, `${m.hidden} wide: worst gradient error ${worst.toExponential(2)} of the largest`);
  }
});

t.test('two stages compute bit for bit what the whole model computes', async (t) => {
  const specs = layerSpecs({ ...spec, layers: 6 });
  const whole = new StageModel(specs, 11);
  const [a, b] = partitionLayers(6, 2).map((r) => new StageModel(specs.slice(r.first, r.end), 11));
  t.same(
    Array.from(a.params).concat(Array.from(b.params)),
    Array.from(whole.params),
    'each layer initialised from its own stream',
  );
  const data = makeDataset({ seed: 5, inputs: spec.inputs, classes: spec.classes, train: 8, eval: 1 });
  const ref = whole.forward(data.train.x, 8);
  const mid = a.forward(data.train.x, 8);
  const out = b.forward(mid.output, 8);
  t.same(out.output, ref.output);
  const g = softmaxCrossEntropy(ref.output, data.train.y, 8, spec.classes, 1 / 8).grad;
  whole.backward(g, ref.saved);
  a.backward(b.backward(g, out.saved)!, mid.saved, undefined, false);
  t.same(Array.from(a.grads).concat(Array.from(b.grads)), Array.from(whole.grads));
});

t.test(
  'microbatches in flight keep their activations; a finished backward hands its arrays to the next forward',
  async (t) => {
    // 1F1B keeps several microbatches between forward and backward: their outputs and saved inputs must survive
    // the forwards in between, and the arrays are reused only after their own backward
    const specs = layerSpecs({ ...spec, layers: 5 });
    const rows = 4;
    const data = makeDataset({ seed: 8, inputs: spec.inputs, classes: spec.classes, train: 3 * rows, eval: 1 });
    const xs = [0, 1, 2].map((m) => data.train.x.slice(m * rows * spec.inputs, (m + 1) * rows * spec.inputs));
    const ys = [0, 1, 2].map((m) => data.train.y.slice(m * rows, (m + 1) * rows));
    const lossGrad = (output: Float32Array, m: number) =>
      softmaxCrossEntropy(output, ys[m], rows, spec.classes, 1 / (3 * rows)).grad;

    // one microbatch at a time, each on a fresh model: the reference
    const want = new Float64Array(new StageModel(specs, 13).grads.length);
    const outputs: number[][] = [];
    const inputGrads: number[][] = [];
    for (let m = 0; m < 3; m++) {
      const fresh = new StageModel(specs, 13);
      const f = fresh.forward(xs[m], rows);
      outputs.push(Array.from(f.output));
      inputGrads.push(Array.from(fresh.backward(lossGrad(f.output, m), f.saved)!));
      fresh.grads.forEach((v, i) => (want[i] += v));
    }

    const model = new StageModel(specs, 13);
    const f0 = model.forward(xs[0], rows);
    const f1 = model.forward(xs[1], rows);
    t.not(f1.output, f0.output, 'two microbatches in flight have their own arrays');
    t.same(Array.from(f0.output), outputs[0], "microbatch 0's output survives microbatch 1's forward");
    const g0 = model.backward(lossGrad(f0.output, 0), f0.saved)!;
    const f2 = model.forward(xs[2], rows);
    t.equal(f2.output, f0.output, "microbatch 2 reuses microbatch 0's arrays once its backward is done");
    t.same(Array.from(f1.output), outputs[1], "microbatch 1's output survives microbatch 2's forward");
    const g1 = model.backward(lossGrad(f1.output, 1), f1.saved)!;
    const g2 = model.backward(lossGrad(f2.output, 2), f2.saved)!;
    t.same(
      [g0, g1, g2].map((g) => Array.from(g)),
      inputGrads,
      'input gradients as computed one at a time',
    );
    t.not(g0, g1, 'each input gradient is a new array (it leaves the stage)');
    let worst = 0;
    model.grads.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - want[i]))));
    t.ok(worst < 1e-6, `accumulated gradients as the one-at-a-time sum: worst ${worst.toExponential(2)}`);
    const f3 = model.forward(xs[0], rows);
    t.equal(model.backward(lossGrad(f3.output, 0), f3.saved, undefined, false), undefined, 'no input gradient asked');
  },
);

t.test('layers are split into contiguous, covering, balanced ranges', async (t) => {
  t.same(partitionLayers(6, 2), [
    { first: 0, end: 3 },
    { first: 3, end: 6 },
  ]);
  t.same(partitionLayers(7, 3), [
    { first: 0, end: 3 },
    { first: 3, end: 5 },
    { first: 5, end: 7 },
  ]);
  t.same(partitionLayers(4, 1), [{ first: 0, end: 4 }]);
  t.throws(() => partitionLayers(2, 3), /cannot split/);
});

t.test('the data set is deterministic and uses every class', async (t) => {
  const s = { seed: 1, inputs: 8, classes: 4, train: 2000, eval: 100 };
  const one = makeDataset(s);
  const two = makeDataset(s);
  t.same(one.train.x, two.train.x);
  t.same(one.eval.y, two.eval.y);
  const counts = new Array(4).fill(0);
  for (const y of one.train.y) counts[y]++;
  t.ok(
    counts.every((c) => c > 100),
    `class counts ${counts.join(',')}`,
  );
  t.not(makeDataset({ ...s, seed: 2 }).train.x[0], one.train.x[0]);
  const batch = gather(one.train, [3, 1], 8);
  t.same(Array.from(batch.x.subarray(0, 8)), Array.from(one.train.x.subarray(24, 32)));
  t.equal(batch.y[1], one.train.y[1]);
});

t.test('batch order: each epoch is a permutation, and a restored position continues identically', async (t) => {
  const order = new BatchOrder(16, 42);
  const epoch = [...order.next(8), ...order.next(8)].sort((x, y) => x - y);
  t.same(
    epoch,
    Array.from({ length: 16 }, (_, i) => i),
  );
  const reference = new BatchOrder(16, 42);
  const stream: number[][] = [];
  for (let i = 0; i < 7; i++) stream.push(Array.from(reference.next(4)));
  const first = new BatchOrder(16, 42);
  for (let i = 0; i < 5; i++) first.next(4); // stops mid-epoch 1
  const resumed = new BatchOrder(16, 42);
  resumed.restore(JSON.parse(JSON.stringify(first.position())));
  t.same([Array.from(resumed.next(4)), Array.from(resumed.next(4))], stream.slice(5, 7));
  t.throws(() => order.next(5), /must divide/);
});

t.test('rng state round-trips and streams differ by seed', async (t) => {
  const a = Rng.fromSeed(1, 2);
  a.nextU32();
  const b = Rng.fromState(a.state());
  t.same([a.nextU32(), a.nextU32()], [b.nextU32(), b.nextU32()]);
  t.not(Rng.fromSeed(1).nextU32(), Rng.fromSeed(2).nextU32());
  t.throws(() => Rng.fromState([1, 2, 3]), /four 32-bit words/);
});

t.test('command line: defaults, overrides, clear errors', async (t) => {
  const d = parseTrainArgs([]);
  t.equal(d.steps, 300);
  t.equal(d.layers, 6);
  t.equal(parseTrainArgs(['--steps', '40', '--lr', '1e-3']).lr, 1e-3);
  t.throws(() => parseTrainArgs(['--steps', 'x']), /--steps x: expected a non-negative number/);
  try {
    parseTrainArgs(['--steps', '-1']);
    t.fail('negative steps accepted');
  } catch (e) {
    t.ok(e instanceof TrainUsageError, 'usage errors have their own class (the program exits 2 on them)');
  }
  t.throws(() => parseTrainArgs(['--layers', '3']), /at least 4 layers/);
  t.throws(() => parseTrainArgs(['--checkpoint-every', '5']), /needs --checkpoint-dir/);
  t.equal(d.warmupSteps, 0, 'every step is timed unless asked');
  t.equal(parseTrainArgs(['--steps', '40', '--warmup-steps', '10']).warmupSteps, 10);
  t.throws(() => parseTrainArgs(['--steps', '40', '--warmup-steps', '40']), /must be fewer than --steps 40/);
  t.throws(() => parseTrainArgs(['--bogus']), /Unknown option/);
});

t.test('traffic: sends and receives are point-to-point, every other op counts as collective', async (t) => {
  const { summariseTraffic } = await import('../../../src/examples/train/traffic.js');
  const op = (name: string, bytes: number) => ({
    op: name,
    transport: 'shm' as const,
    algorithm: 'x',
    count: 1,
    bytes,
  });
  const got = summariseTraffic({
    pipeline: [op('send', 100), op('recv', 40)],
    data: [op('allReduce', 7), op('allGather', 3)],
    world: [op('barrier', 0)],
  });
  t.same([got.p2pSentBytes, got.p2pRecvBytes, got.collectiveBytes], [100, 40, 10]);
  t.same(Object.keys(got.byGroup), ['pipeline', 'data', 'world']);
});
