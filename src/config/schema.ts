/**
 * The config's JSON Schema (draft 2020-12): the single source of truth for keys, types, defaults and
 * enums. Validation (ajv, compiled ahead of time by scripts/build/compile-schema.js), `--set` path
 * checks, `dtrain schema` (for editors) and the key checks in types.ts all read this object.
 *
 * `errorMessage` is an annotation both dtrain and yaml-language-server show instead of the generic
 * text when a union (anyOf) or a pattern fails; ajv only registers it as a known keyword.
 */
import { DURATION_PATTERN } from './duration.js';
import { ENV_NAME_PATTERN, ENV_NAME_RULE } from './env-name.js';
import { HOST_NAME_PATTERN, HOST_NAME_RULE } from './host-name.js';
import { MAX_NODES, MAX_PROCS_PER_NODE, MAX_WORLD_SIZE } from './limits.js';

const duration = {
  description: 'A duration: 30s, 5m, 1h, 250ms (units may be combined: 1h30m) or a number of seconds.',
  errorMessage: 'must be a duration such as 30s, 5m, 1h or a number of seconds',
  anyOf: [
    { type: 'number', minimum: 0 },
    { type: 'string', pattern: DURATION_PATTERN },
  ],
} as const;

const port = { type: 'integer', minimum: 1, maximum: 65535 } as const;

const portOrAuto = {
  errorMessage: 'must be a port number 1-65535 or "auto"',
  anyOf: [port, { const: 'auto' }],
} as const;

const positiveInt = { type: 'integer', minimum: 1 } as const;
/** process counts on one node, node counts and rank-grid sizes: limits.ts */
const procCount = { type: 'integer', minimum: 1, maximum: MAX_PROCS_PER_NODE } as const;
const nodeCount = { type: 'integer', minimum: 1, maximum: MAX_NODES } as const;
const gridSize = { type: 'integer', minimum: 1, maximum: MAX_WORLD_SIZE } as const;
/** A value written into a batch directive line: one word. */
const directiveWord = {
  type: 'string',
  pattern: '^\\S+$',
  errorMessage: 'must be a single word (no spaces or line breaks)',
} as const;

export const SCHEMA_ID = 'https://dtrain.dev/schema/config.json';

export const configSchema = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $id: SCHEMA_ID,
  title: 'dtrain job config',
  description: 'A distributed training job: where it runs, how ranks are laid out, how it is supervised.',
  type: 'object',
  additionalProperties: false,
  required: ['entrypoint'],
  $defs: { duration, port, portOrAuto, positiveInt },
  // Extension keys (as in docker-compose) hold YAML anchors to reuse: `x-gpu-node: &gpu {slots: 8}`.
  patternProperties: { '^x-': {} },
  properties: {
    name: {
      description: 'Job name (logs, batch job name). Default: the config file name without extension.',
      type: 'string',
      pattern: '^[A-Za-z0-9._-]{1,64}$',
      errorMessage: "must be 1-64 characters of letters, digits, '.', '_' or '-'",
    },
    entrypoint: {
      description:
        'The worker command: a string split like a shell would (quotes, backslashes; never run through one) ' +
        'or a list of arguments.',
      errorMessage: 'must be a non-empty command line (string) or a non-empty list of arguments',
      anyOf: [
        { type: 'string', minLength: 1 },
        { type: 'array', items: { type: 'string' }, minItems: 1 },
      ],
    },
    workdir: {
      description: "The workers' working directory on every node. Default: the directory dtrain runs in.",
      type: 'string',
      minLength: 1,
    },
    env: {
      description: 'Extra environment for every worker (scalars only). Overrides env_file.',
      type: 'object',
      propertyNames: {
        pattern: ENV_NAME_PATTERN,
        errorMessage: ENV_NAME_RULE,
      },
      additionalProperties: {
        type: ['string', 'number', 'boolean'],
        errorMessage: 'must be a single value (string, number, true or false)',
      },
      default: {},
    },
    secret_env: {
      description:
        'More env names whose values are secrets (masked wherever dtrain prints them), beyond the names ' +
        'with a TOKEN, SECRET, PASS, PASSWD, PASSWORD, KEY, CREDENTIAL... part (README.md, Secrets).',
      type: 'array',
      items: {
        type: 'string',
        pattern: ENV_NAME_PATTERN,
        errorMessage: ENV_NAME_RULE,
      },
      uniqueItems: true,
      default: [],
    },
    env_file: {
      description:
        'A file of KEY=VALUE lines added to every worker environment (relative to the config file), checked like ' +
        'env: its names on every line, its values where env does not override them.',
      type: 'string',
      minLength: 1,
    },
    nodes: {
      description: 'The nodes in rank order (node 0 first). Alternative: hostfile. Default: localhost.',
      type: 'array',
      minItems: 1,
      maxItems: MAX_NODES,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['host'],
        properties: {
          host: {
            description: 'Host name or address as the controller reaches it.',
            type: 'string',
            // nested, so a value that is no string at all is told so, not this rule
            allOf: [{ pattern: HOST_NAME_PATTERN, errorMessage: HOST_NAME_RULE }],
          },
          slots: { description: 'Process slots (usually GPUs) on this node.', ...procCount },
          user: { description: 'SSH user for this node (overrides ssh.user).', type: 'string', minLength: 1 },
          port: { description: 'SSH port for this node (overrides ssh.port).', $ref: '#/$defs/port' },
          spare: {
            description: 'Elastic jobs: started only to take the place of a lost node (needs elastic).',
            type: 'boolean',
            default: false,
          },
        },
      },
    },
    hostfile: {
      description: 'DeepSpeed-style hostfile ("<host> slots=<n>" lines, # comments), relative to the config file.',
      type: 'string',
      minLength: 1,
    },
    include: {
      description: 'DeepSpeed filter of hosts/slots to use, e.g. "worker-0:0,2@worker-1".',
      type: 'string',
      minLength: 1,
    },
    exclude: {
      description: 'DeepSpeed filter of hosts/slots to leave out, e.g. "worker-1:0".',
      type: 'string',
      minLength: 1,
    },
    nproc_per_node: {
      description: 'Processes per node; auto: the node slots when given, else its GPU count at launch.',
      errorMessage: `must be an integer from 1 to ${MAX_PROCS_PER_NODE} or "auto"`,
      anyOf: [procCount, { const: 'auto' }],
      default: 'auto',
    },
    parallelism: {
      description: 'The rank grid (Megatron order, tensor fastest) and its schedules.',
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        data: {
          description: 'Data-parallel size; auto: world / (tensor × pipeline).',
          errorMessage: `must be an integer from 1 to ${MAX_WORLD_SIZE} or "auto"`,
          anyOf: [gridSize, { const: 'auto' }],
          default: 'auto',
        },
        tensor: { description: 'Tensor-parallel size.', ...gridSize, default: 1 },
        pipeline: { description: 'Pipeline-parallel size (stages).', ...gridSize, default: 1 },
        zero_stage: {
          description:
            'ZeRO stage: 0 replicates the optimizer state and updates every parameter on every rank (DDP), ' +
            '1 shards optimizer state (and all-gathers the updated parameters), 2 also gradients.',
          enum: [0, 1, 2],
          default: 0,
        },
        microbatches: { description: 'Microbatches per step.', ...positiveInt, default: 1 },
        schedule: { description: 'Pipeline schedule.', enum: ['1f1b', 'gpipe', 'interleaved-1f1b'], default: '1f1b' },
        virtual_stages: {
          description: 'Model chunks per pipeline rank (interleaved-1f1b).',
          ...positiveInt,
          default: 1,
        },
      },
    },
    backend: {
      description: 'Collective backend: auto (nccl when the workers see GPUs, else cpu), cpu or nccl.',
      enum: ['auto', 'cpu', 'nccl'],
      default: 'auto',
    },
    master: {
      description: 'MASTER_ADDR/MASTER_PORT for PyTorch (rank 0 binds the port).',
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        addr: {
          description: "auto: node 0's address as the other nodes reach it.",
          type: 'string',
          minLength: 1,
          default: 'auto',
        },
        port: { description: "auto: node 0's agent picks a free port.", $ref: '#/$defs/portOrAuto', default: 'auto' },
      },
    },
    rendezvous: {
      description: "dtrain's own store, served by the controller.",
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        addr: {
          description: 'Address the nodes reach the controller at; auto: detected at launch.',
          type: 'string',
          minLength: 1,
          default: 'auto',
        },
        port: { description: 'auto: a free port.', $ref: '#/$defs/portOrAuto', default: 'auto' },
        timeout: { description: 'How long every node has to join.', $ref: '#/$defs/duration', default: '60s' },
      },
    },
    heartbeat: {
      description: 'Agent <-> controller liveness.',
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        interval: { $ref: '#/$defs/duration', default: '5s' },
        timeout: { description: 'A node silent this long is lost.', $ref: '#/$defs/duration', default: '30s' },
      },
    },
    collective_timeout: {
      description: 'Any collective or point-to-point op fails on every rank after this long.',
      $ref: '#/$defs/duration',
      default: '300s',
    },
    hang_timeout: {
      description:
        'The job is declared hung when no rank makes progress for this long (a completed collective, a ' +
        'progress report, or before the first report output or CPU time outside a collective wait); its ' +
        "ranks' stacks are gathered and the culprits named. off: never.",
      anyOf: [{ const: 'off' }, { $ref: '#/$defs/duration' }],
      errorMessage: 'must be off or a duration such as 30s, 5m',
      default: 'off',
    },
    restarts: {
      description: 'Whole-group restarts after a failure (torchrun --max-restarts).',
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        max: { type: 'integer', minimum: 0, default: 0 },
        backoff: { $ref: '#/$defs/duration', default: '5s' },
      },
    },
    shutdown_grace: {
      description: 'Time between SIGTERM and SIGKILL when stopping workers.',
      $ref: '#/$defs/duration',
      default: '30s',
    },
    checkpoint_signal: {
      description:
        "Sent to every worker when the scheduler's warning (scheduler.signal) arrives: save now. dtrain then " +
        'waits up to shutdown_grace for the save and stops the job.',
      enum: ['SIGUSR1', 'SIGUSR2', 'SIGHUP'],
      default: 'SIGUSR1',
    },
    node_single_threaded: {
      description:
        "Node workers (the entrypoint's program is node) start with V8's --single-threaded: V8 compiles and " +
        "collects garbage on the rank's own thread, so a rank uses one core (as torchrun sets " +
        'OMP_NUM_THREADS=1). Flags in the entrypoint win. false: V8 also runs helper threads beside each rank. ' +
        'Other programs (python, torchrun, shell scripts) are never changed.',
      type: 'boolean',
      default: true,
    },
    elastic: {
      description:
        'Keep training when nodes are lost: re-plan on the nodes alive, take spares in, grow back when they ' +
        'return. Absent: a lost node ends the attempt like a failure.',
      type: 'object',
      additionalProperties: false,
      properties: {
        min_nodes: {
          description: 'Keep training while at least this many nodes are alive.',
          ...nodeCount,
          default: 1,
        },
        max_nodes: {
          description: 'Grow back up to this many nodes. Default: the listed nodes that are not spares.',
          ...nodeCount,
        },
        rejoin: {
          description: 'How often lost nodes and spares are retried.',
          $ref: '#/$defs/duration',
          default: '30s',
        },
        max_losses_per_node: {
          description: 'A node lost this often is excluded for the rest of the job.',
          ...positiveInt,
          default: 3,
        },
        data_divides: {
          description: 'The data-parallel size must divide this (e.g. global batch / microbatches).',
          ...positiveInt,
        },
      },
    },
    checkpoint: {
      description: "The job's checkpoints (DTRAIN_CHECKPOINT_DIR).",
      type: 'object',
      additionalProperties: false,
      properties: {
        dir: {
          description: 'The checkpoint folder, the same on every node (relative to workdir).',
          type: 'string',
          minLength: 1,
        },
      },
    },
    logs: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        dir: {
          description: 'One folder per run under it (relative to workdir).',
          type: 'string',
          minLength: 1,
          default: './logs',
        },
        tee: { description: "Also print the workers' output on the terminal.", type: 'boolean', default: true },
        ranks: {
          description: 'Ranks whose output is shown on the terminal: all, or a list.',
          errorMessage: 'must be "all" or a list of distinct ranks',
          anyOf: [{ const: 'all' }, { type: 'array', items: { type: 'integer', minimum: 0 }, uniqueItems: true }],
          default: 'all',
        },
      },
    },
    monitor: {
      description:
        'Serve the live dashboard (/), /api/status and Prometheus /metrics over HTTP while the job runs ' +
        '(`--monitor` on the command line). `dtrain status` shows its address.',
      type: 'object',
      additionalProperties: false,
      properties: {
        port: { description: 'auto: a free port.', $ref: '#/$defs/portOrAuto', default: 'auto' },
        host: {
          description: 'Address to listen on. Another than loopback needs token_file.',
          type: 'string',
          minLength: 1,
          default: '127.0.0.1',
        },
        token_file: {
          description:
            'A file (not readable by others) holding the token clients must send: `Authorization: Bearer ' +
            '<token>` or `?token=`. ~/ is the home folder.',
          type: 'string',
          minLength: 1,
        },
      },
    },
    ssh: {
      description: 'How the controller reaches remote nodes.',
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        user: { type: 'string', minLength: 1 },
        port: { description: "Unset: the host's Port in ~/.ssh/config, else 22.", $ref: '#/$defs/port' },
        identity_file: { description: '~/ is the home folder.', type: 'string', minLength: 1 },
        known_hosts: { description: '~/ is the home folder.', type: 'string', minLength: 1 },
        strict_host_key_checking: {
          description: 'yes: unknown or changed host keys fail; accept-new: record unknown keys; no: never check.',
          enum: ['yes', 'accept-new', 'no'],
          default: 'yes',
        },
        connect_timeout: { $ref: '#/$defs/duration', default: '10s' },
        concurrency: { description: 'Nodes contacted at once.', ...positiveInt, default: 32 },
        remote_dtrain: {
          description:
            "dtrain command on the remote nodes. Default: this dtrain's own path where it exists there, " +
            'else dtrain on their PATH.',
          type: 'string',
          minLength: 1,
        },
        forward_env: {
          description: 'Launcher environment variables (glob patterns) passed to remote workers.',
          type: 'array',
          items: { type: 'string', minLength: 1 },
          default: ['NCCL_*', 'CUDA_*', 'UCX_*', 'PYTHON*'],
        },
        prelude: {
          description: 'Shell line run on a remote node before the agent, e.g. "module load cuda".',
          type: 'string',
        },
      },
    },
    scheduler: {
      description: 'Batch submission (dtrain submit); nodes then come from the allocation unless listed.',
      type: 'object',
      additionalProperties: false,
      required: ['kind'],
      properties: {
        kind: { enum: ['slurm', 'pbs'] },
        nodes: { description: 'Nodes to allocate. Default: the listed nodes, else 1.', ...nodeCount },
        // these land in #SBATCH / #PBS lines, which sbatch and qsub split at white space with no quoting
        partition: directiveWord,
        account: directiveWord,
        qos: directiveWord,
        time: {
          description: 'Wall-clock limit: [days-]hours:minutes:seconds, or minutes.',
          type: 'string',
          pattern: '^([0-9]+-)?[0-9]+(:[0-5][0-9]){0,2}$',
          errorMessage: 'must be a time limit such as "02:00:00", "1-00:00:00" or "90" (minutes)',
        },
        gpus_per_node: { type: 'integer', minimum: 0 },
        cpus_per_task: positiveInt,
        mem: {
          description: 'Memory per node, e.g. 64G.',
          type: 'string',
          pattern: '^[0-9]+[KMGT]?$',
          errorMessage: 'must be an amount such as 64G, 512M or 0 (all)',
        },
        signal: {
          description: 'Signal sent before the time limit, e.g. USR1@120.',
          type: 'string',
          pattern: '^(B:)?[A-Z0-9]+(@[0-9]+)?$',
          errorMessage: 'must be [B:]SIGNAL[@SECONDS], e.g. USR1@120',
        },
        requeue: {
          description:
            'Slurm: --requeue, and at the warning signal dtrain saves, then puts the job back in the queue ' +
            '(scontrol requeue) to resume from the checkpoint.',
          type: 'boolean',
          default: false,
        },
        extra: {
          description: 'Further scheduler options, passed as given, one directive line each.',
          type: 'array',
          items: {
            type: 'string',
            pattern: '^-[^\\r\\n]*$',
            errorMessage: "must be an option starting with '-', on one line",
          },
        },
      },
    },
    model: {
      description: 'Optional model shape: enables the per-rank memory estimate.',
      type: 'object',
      additionalProperties: false,
      required: ['params'],
      properties: {
        params: { description: 'Parameter count, e.g. 7.5e9.', type: 'number', exclusiveMinimum: 0 },
        layers: positiveInt,
        hidden: positiveInt,
        heads: positiveInt,
        seq_len: positiveInt,
        micro_batch_size: { ...positiveInt, default: 1 },
        dtype: { enum: ['bf16', 'fp16', 'fp32'], default: 'bf16' },
        gpu_memory_gb: { description: 'Memory per GPU in GB (1e9 bytes).', type: 'number', exclusiveMinimum: 0 },
      },
    },
  },
} as const;

export type ConfigSchema = typeof configSchema;
