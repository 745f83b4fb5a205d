/**
 * The end-to-end example: an MLP classifier trained with data × pipeline parallelism and ZeRO,
 * through the public runtime API only (`import … from 'dtrain'`).
 *
 *   dtrain launch configs/quickstart.yaml [-- --steps 300 --checkpoint-dir ckpt --checkpoint-every 25 --report-dir out]
 *
 * Each pipeline stage holds a contiguous run of layers; each data rank takes its slice of every global batch
 * and cuts it into the schedule's microbatches; the Pipeline runs them (the job's schedule); ShardedAdam averages
 * the stage's gradients over the data group and updates its shard. The per-sample gradient scale is
 * 1 / (local batch), and the data group averages, so every topology computes the gradient of the same global
 * mean loss over the same samples. Rank (last stage, data 0) prints `step N loss X` and `eval_loss X`.
 *
 * The gradient averaging overlaps the backward (--no-overlap: after it): each chunk's last microbatch hands every
 * layer's gradients to ShardedAdam.beginReduction's reduction as soon as it computed them, and buckets of
 * DTRAIN_BUCKET_CAP_MB start their all-reduce (ZeRO-2: reduce-scatter) while the next layers compute.
 *
 * Resuming: from the step of the job's last checkpoint commit (`dist.checkpoint.latest()`: after a restart or a
 * resize of this job, on any world size), else from the checkpoint folder's latest.json (a new job). Every
 * checkpoint is committed (`dist.checkpoint.commit`) once all of its files are written. The global batch is
 * fixed (each data rank takes global / data size rows), so the loss does not depend on the world size.
 *
 * Failure injection for the restart test: TRAIN_FAIL_AT_STEP=N makes rank TRAIN_FAIL_RANK (default: the last)
 * exit 1 right after step N, on the first attempt only (dist.config.restartCount 0).
 *
 * The checkpoint signal (the scheduler's warning, forwarded by dtrain): with --checkpoint-dir, the ranks agree
 * after every step whether any of them got it (one 4-byte all-reduce), save that step even when periodic
 * checkpoints are off, and exit 0 without the evaluation; the next run resumes from it.
 */
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { init, makeDirs, Pipeline, ShardedAdam, type Dist, type GradReduction, type PipelineArray } from 'dtrain';
import { parseTrainArgs, TrainUsageError, type TrainArgs } from './args.js';
import {
  CheckpointMismatchError,
  loadCheckpoint,
  readLatest,
  readState,
  saveCheckpoint,
  type TrainState,
} from './checkpoint.js';
import { BatchOrder, gather, makeDataset, type Samples } from './data.js';
import {
  layerSpecs,
  partitionLayers,
  softmaxCrossEntropy,
  crossEntropySum,
  StageModel,
  type StageActivations,
} from './mlp.js';
import { summariseTraffic, type Traffic } from './traffic.js';

/** Above every tag the Pipeline uses for this run's shapes: the evaluation's own p2p messages. */
const EVAL_TAG = 1 << 24;

interface RankReport {
  rank: number;
  stage: number;
  dataRank: number;
  layers: number[];
  /** sample ids this rank's microbatches carried, per step (the steps this attempt ran) */
  samples: Record<number, number[]>;
  traffic: Traffic;
  paramsSha256: string;
  stepLosses: Record<number, number>;
  /** wall milliseconds of each step's pipeline and optimizer step (the overlap benchmark reads them) */
  stepMs: Record<number, number>;
  evalLoss: number | undefined;
  firstStep: number;
  resumedFrom: number | undefined;
}

async function main(args: TrainArgs): Promise<void> {
  const dist = await init();
  const pg = dist.groups.pipeline;
  const dg = dist.groups.data;
  const stage = pg.rank;
  const printer = stage === pg.size - 1 && dg.rank === 0;

  // the job's schedule (parallelism.*): the Pipeline below follows it too
  const { microbatches: M, virtualStages: V } = dist.config;
  if (args.globalBatch % (dg.size * M) !== 0)
    throw new TrainUsageError(
      `--global-batch ${args.globalBatch} must split into ${dg.size} data ranks × ${M} microbatches`,
    );
  const localRows = args.globalBatch / dg.size;
  const microRows = localRows / M;

  // model slice k (virtual stage) lives on stage k mod P as its chunk floor(k / P): with interleaved 1F1B a
  // rank holds V non-adjacent slices, otherwise one
  const specs = layerSpecs({ inputs: args.inputs, hidden: args.hidden, layers: args.layers, classes: args.classes });
  const split = partitionLayers(specs.length, pg.size * V);
  const lastVs = split.length - 1;
  const models = Array.from({ length: V }, (_, c) => split[c * pg.size + stage]).map(
    (r) => new StageModel(specs.slice(r.first, r.end), args.seed),
  );
  const data = makeDataset({
    seed: args.seed,
    inputs: args.inputs,
    classes: args.classes,
    train: args.trainSamples,
    eval: args.evalSamples,
  });
  const order = new BatchOrder(args.trainSamples, args.seed);

  // the stage is the job's parallelism.zero_stage (ShardedAdam's default)
  const opt = new ShardedAdam(
    models.map((m) => m.params),
    { group: dg, lr: args.lr, weightDecay: args.weightDecay },
  );

  let step = 0;
  let resumedFrom: number | undefined;
  if (args.checkpointDir) {
    // The job's last commit decides (a restart or resize of this job); a new job goes on from the folder's own.
    const committed = await dist.checkpoint.latest();
    const saved =
      committed === null ? await readLatest(args.checkpointDir) : await readState(args.checkpointDir, committed);
    const source = committed === null ? args.checkpointDir : "the job's last commit";
    if (saved) {
      if (
        JSON.stringify(saved.stages) !== JSON.stringify(split) ||
        saved.globalBatch !== args.globalBatch ||
        saved.seed !== args.seed
      )
        throw new TrainUsageError(`the checkpoint in ${args.checkpointDir} is for another layer split, batch or seed`);
      await loadCheckpoint(
        args.checkpointDir,
        stage,
        opt,
        models.map((m) => m.params),
        saved,
      );
      order.restore(saved.data);
      step = saved.step;
      resumedFrom = step;
      if (printer) console.log(`resumed from step ${step} (${source}, world ${dist.worldSize})`);
    }
  }

  // each microbatch's samples, refilled every step (the step's backward is done with the last step's)
  const micro: Samples[] = [];
  const lossGrads: Float32Array[] = [];
  // the step's gradient averaging, started layer by layer during the backward (unless --no-overlap)
  let reduction: GradReduction | undefined;
  const pipe = new Pipeline({
    group: pg,
    activationSize: (vs) => microRows * specs[split[vs].end - 1].outputs,
    forward: (input: PipelineArray | null, mb: number, chunk: number) => {
      const vs = chunk * pg.size + stage;
      const x = vs === 0 ? micro[mb].x : (input as Float32Array);
      const { output, saved } = models[chunk].forward(x, microRows);
      if (vs !== lastVs) return { output, saved };
      // the loss gradient lives until this microbatch's backward, within the step: one array per microbatch
      lossGrads[mb] ??= new Float32Array(microRows * args.classes);
      const { loss, grad } = softmaxCrossEntropy(
        output,
        micro[mb].y,
        microRows,
        args.classes,
        1 / localRows,
        lossGrads[mb],
      );
      return { loss, saved: { acts: saved, grad } };
    },
    backward: (gradOutput: PipelineArray | null, _mb: number, stashed) => {
      const model = models[stashed.chunk];
      // the chunk's last microbatch finishes each layer's gradients: hand them on as they are done
      const done =
        reduction && stashed.last
          ? (k: number) => {
              const r = model.layerRange(k);
              reduction!.ready(stashed.chunk, r.start, r.end);
            }
          : undefined;
      const vs = stashed.chunk * pg.size + stage;
      if (vs === lastVs) {
        const { acts, grad } = stashed.saved as { acts: StageActivations; grad: Float32Array };
        return model.backward(grad, acts, done, vs > 0);
      }
      return model.backward(gradOutput as Float32Array, stashed.saved as StageActivations, done, vs > 0);
    },
  });

  const report: RankReport = {
    rank: dist.rank,
    stage,
    dataRank: dg.rank,
    layers: models.flatMap((m) => m.specs.map((l) => l.index)),
    samples: {},
    traffic: { p2pSentBytes: 0, p2pRecvBytes: 0, collectiveBytes: 0, byGroup: {} },
    paramsSha256: '',
    stepLosses: {},
    stepMs: {},
    evalLoss: undefined,
    firstStep: step + 1,
    resumedFrom,
  };
  const failAt = Number(process.env.TRAIN_FAIL_AT_STEP ?? 0);
  const failRank = Number(process.env.TRAIN_FAIL_RANK ?? dist.worldSize - 1);
  const firstAttempt = dist.config.restartCount === 0;

  const save = async () => {
    const state: TrainState = {
      step,
      data: order.position(),
      globalBatch: args.globalBatch,
      stages: split,
      seed: args.seed,
    };
    await saveCheckpoint(
      args.checkpointDir!,
      stage,
      opt,
      models.map((m) => m.params),
      dist.groups,
      state,
    );
    // every stage's shards and the train state are on disk: the job resumes from here (a resize exits 75 now)
    await dist.checkpoint.commit(step);
  };
  if (!args.checkpointDir)
    dist.onCheckpointSignal((sig) => {
      if (printer) console.log(`${sig}: no --checkpoint-dir, nothing to save`);
    });
  let stoppedAt: number | undefined;

  await dist.groups.world.barrier();
  let started = performance.now();
  let cpuAtStart = process.cpuUsage();
  const stepsAtStart = step;
  // The timed part starts after the warm-up (V8 compiles the step's code at first).
  const timedFrom = Math.min(stepsAtStart + args.warmupSteps, args.steps);
  while (step < args.steps) {
    if (step === timedFrom && step > stepsAtStart) {
      await dist.groups.world.barrier();
      started = performance.now();
      cpuAtStart = process.cpuUsage();
    }
    const ids = order.next(args.globalBatch);
    const local = ids.subarray(dg.rank * localRows, (dg.rank + 1) * localRows);
    for (let m = 0; m < M; m++)
      micro[m] = gather(data.train, local.subarray(m * microRows, (m + 1) * microRows), args.inputs, micro[m]);
    for (const m of models) m.grads.fill(0);
    opt.lr = learningRate(args, step);
    const grads = models.map((m) => m.grads);
    const stepStart = performance.now();
    reduction = args.overlap ? opt.beginReduction(grads) : undefined;
    const result = await pipe.step({ gradients: reduction });
    await opt.step(grads);
    step++;
    report.stepMs[step] = performance.now() - stepStart;
    report.samples[step] = Array.from(local);
    if (result.loss !== undefined) {
      const mean = new Float64Array([result.loss]);
      await dg.allReduce(mean, { op: 'avg' });
      report.stepLosses[step] = mean[0]!;
      if (printer && (step === 1 || step % args.logEvery === 0 || step === args.steps))
        console.log(`step ${step} loss ${mean[0].toFixed(4)}`);
    }
    // dtrain status, top and the monitor show it (and judge stragglers by it)
    dist.report({
      step,
      samples: local.length,
      ...(report.stepLosses[step] !== undefined && { loss: report.stepLosses[step] }),
    });
    const saved = args.checkpointDir !== undefined && args.checkpointEvery > 0 && step % args.checkpointEvery === 0;
    if (saved) await save();
    if (args.checkpointDir && (await anyRankAsked(dist))) {
      if (!saved) await save();
      if (printer) console.log(`${dist.checkpointSignal}: saved step ${step}, stopping`);
      stoppedAt = step;
      break;
    }
    if (firstAttempt && failAt === step && dist.rank === failRank) {
      console.error(`rank ${dist.rank}: injected failure after step ${step} (TRAIN_FAIL_AT_STEP)`);
      process.exit(1);
    }
  }
  if (stoppedAt !== undefined) {
    await dist.close();
    return;
  }
  const cpu = process.cpuUsage(cpuAtStart);
  await dist.groups.world.barrier();
  const seconds = (performance.now() - started) / 1000;
  // CPU time of every rank's training loop, summed: what the step costs in work, whatever else the machine runs
  const cpuSeconds = new Float64Array([(cpu.user + cpu.system) / 1e6]);
  await dist.groups.world.allReduce(cpuSeconds, { op: 'sum' });

  report.evalLoss = await evaluate(dist, models, data.eval, args);
  const hash = createHash('sha256');
  for (const m of models) hash.update(new Uint8Array(m.params.buffer, m.params.byteOffset, m.params.byteLength));
  report.paramsSha256 = hash.digest('hex');
  report.traffic = summariseTraffic(dist.stats());
  const samplesSeen = Object.values(report.samples).reduce((n, s) => n + s.length, 0);
  console.log(
    `rank ${dist.rank} stage ${stage} data ${dg.rank}: layers ${report.layers.join(',')}, ${samplesSeen} samples ` +
      `(ids ${firstIds(report.samples)}), sent p2p ${report.traffic.p2pSentBytes} B, collectives ` +
      `${report.traffic.collectiveBytes} B`,
  );
  if (printer) {
    const trained = (step - Math.max(stepsAtStart, timedFrom)) * args.globalBatch;
    console.log(`eval_loss ${report.evalLoss!.toFixed(6)}`);
    const overlap = Object.values(dist.stats().data ?? {}).find((s) => s.overlap)?.overlap;
    if (overlap)
      console.log(
        `grad_overlap buckets ${overlap.buckets} in_flight_ms ${overlap.inFlightMs.toFixed(1)} ` +
          `overlapped_ms ${overlap.overlappedMs.toFixed(1)} exposed_ms ${overlap.exposedMs.toFixed(1)}`,
      );
    console.log(
      `train_seconds ${seconds.toFixed(2)} samples_per_second ${(trained / seconds).toFixed(1)} ` +
        `cpu_seconds_all_ranks ${cpuSeconds[0].toFixed(2)}`,
    );
  }
  if (args.reportDir) {
    await makeDirs(args.reportDir);
    await writeFile(join(args.reportDir, `rank-${dist.rank}.json`), JSON.stringify(report) + '\n');
  }
  await dist.close();
}

/** Whether any rank got the checkpoint signal: every rank must stop after the same step. */
async function anyRankAsked(dist: Dist): Promise<boolean> {
  // signals reach JavaScript when the event loop polls, and same-host collectives can complete without it
  await new Promise((resolve) => setImmediate(resolve));
  const flag = new Int32Array([dist.checkpointRequested ? 1 : 0]);
  await dist.groups.world.allReduce(flag, { op: 'max' });
  return flag[0] === 1;
}

/** Cosine decay from --lr to a tenth of it over the run: a function of the step alone, so resuming needs no state. */
function learningRate(args: TrainArgs, step: number): number {
  const progress = Math.min(1, step / Math.max(1, args.steps - 1));
  return args.lr * (0.1 + 0.9 * 0.5 * (1 + Math.cos(Math.PI * progress)));
}

function firstIds(samples: Record<number, number[]>): string {
  const first = Object.values(samples)[0] ?? [];
  return first.slice(0, 4).join(',') + (first.length > 4 ? ',…' : '');
}

/**
 * Forward only over the fixed evaluation set: data rank d takes its slice, the model slices hand activations
 * on with plain send/recv in slice order, the last one sums the losses over the data group. Returns the mean
 * on the rank holding the last slice.
 */
async function evaluate(dist: Dist, models: StageModel[], set: Samples, args: TrainArgs): Promise<number | undefined> {
  const pg = dist.groups.pipeline;
  const dg = dist.groups.data;
  const P = pg.size;
  const lastVs = P * models.length - 1;
  const rows = Math.ceil(set.rows / dg.size);
  const from = Math.min(set.rows, dg.rank * rows);
  const to = Math.min(set.rows, from + rows);
  const mineRows = to - from;
  let carried: Float32Array | undefined;
  for (let vs = 0; vs <= lastVs; vs++) {
    if (vs % P !== pg.rank) continue;
    const model = models[Math.floor(vs / P)];
    let x: Float32Array;
    if (vs === 0) x = set.x.slice(from * args.inputs, to * args.inputs);
    else if (P === 1) x = carried!;
    else {
      x = new Float32Array(mineRows * model.inputs);
      await pg.recv(x, { peer: (vs - 1) % P, tag: EVAL_TAG + vs });
    }
    const out = model.forward(x, mineRows).output;
    if (vs === lastVs) {
      const total = new Float64Array([crossEntropySum(out, set.y.subarray(from, to), mineRows, args.classes)]);
      await dg.allReduce(total, { op: 'sum' });
      return total[0] / set.rows;
    }
    if (P === 1) carried = out;
    else await pg.send(out, { peer: (vs + 1) % P, tag: EVAL_TAG + vs + 1 });
  }
  return undefined;
}

try {
  await main(parseTrainArgs(process.argv.slice(2)));
} catch (e) {
  if (e instanceof TrainUsageError) {
    console.error(`train: ${e.message}`);
    process.exit(2);
  }
  if (e instanceof CheckpointMismatchError) {
    console.error(`train: ${e.message}`);
    process.exit(1);
  }
  throw e;
}
