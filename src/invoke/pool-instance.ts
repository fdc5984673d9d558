/**
 * One function instance of the process pool: the child process (forked with the instance runner,
 * its logs piped, kept from holding the parent's event loop while idle), the calls it serves, and
 * the translation of a remote error into a FunctionError.
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { FunctionError } from './errors.ts';
import type { InvokeResult } from './invoker.ts';
import type { RemoteError, RunnerConfig } from './instance-runner.ts';
import type { LocalFunctionConfig } from './process-pool.ts';

export interface InstanceStats {
  instanceId: string;
  pid: number | undefined;
  state: InstanceState;
  invocations: number;
  initMs: number | undefined;
  peakRssBytes: number;
}

export interface FunctionStats {
  /** Instances currently alive (starting, idle or busy). */
  instancesAlive: number;
  busy: number;
  queued: number;
  /** Instances started (including prewarmed ones). */
  coldStarts: number;
  invocations: number;
  /** Calls that ended in FunctionError. */
  errors: number;
  /** Calls that ended in FunctionCrashedError (including out-of-memory kills). */
  crashes: number;
  timeouts: number;
  oomKills: number;
  /** Nested invocations made by this function's instances through `context.invoker`. */
  nestedCalls: number;
  /** Replies to nested invocations that were dropped because the calling instance had died. */
  nestedRepliesDropped: number;
  /** Highest peak RSS of any instance of this function so far. */
  maxPeakRssBytes: number;
  /** Alive instances plus the most recent dead ones (state 'dead'). */
  instances: InstanceStats[];
}

export type InstanceState = 'starting' | 'idle' | 'busy' | 'dead';

export interface Call {
  requestId: string;
  payload: Buffer;
  resolve: (r: InvokeResult) => void;
  reject: (e: Error) => void;
  settled: boolean;
  /** Calls queued together that start only when all of them can (invokeGang). */
  gang?: { size: number; started: boolean };
  /** Epoch ms: the call's own limit, below the function's timeout (InvokeOptions.deadline). */
  deadline?: number;
}

export interface Instance {
  id: string;
  child: ChildProcess;
  state: InstanceState;
  spawnedAt: number;
  initMs?: number;
  cold: boolean;
  invocations: number;
  peakRssBytes: number;
  stderrTail: string;
  /** Call waiting for this instance to finish starting. */
  reserved?: Call;
  /** Call currently executing. */
  current?: { call: Call; id: number; coldStart: boolean };
  timer?: NodeJS.Timeout;
  /** prewarm() waiter, called once the instance is ready (or failed to start). */
  onReady?: (err?: Error) => void;
  /** Why we killed it, so the exit handler reports the right error. */
  killReason?: 'timeout' | 'oom' | 'closed' | 'protocol';
  exited: Promise<void>;
}

export interface FunctionState {
  name: string;
  config: LocalFunctionConfig;
  instances: Instance[];
  queue: Call[];
  retired: InstanceStats[];
  seq: number;
  counters: {
    coldStarts: number; invocations: number; errors: number; crashes: number; timeouts: number; oomKills: number;
    nestedCalls: number; nestedRepliesDropped: number; maxPeakRssBytes: number;
  };
}

const STDERR_TAIL_BYTES = 8 * 1024;

const RUNNER_PATH = fileURLToPath(
  new URL(import.meta.url.endsWith('.ts') ? './instance.ts' : './instance.js', import.meta.url),
);

let tsxImportUrl: string | undefined;
function tsxLoader(): string {
  // Resolve from this package so children work regardless of their cwd.
  tsxImportUrl ??= import.meta.resolve('tsx');
  return tsxImportUrl;
}

const isTs = (p: string) => /\.[cm]?tsx?$/.test(p);
export const toBuf = (p: Buffer | Uint8Array): Buffer => (Buffer.isBuffer(p) ? p : Buffer.from(p.buffer, p.byteOffset, p.byteLength));

export function forkInstance(fn: FunctionState, maxPayloadBytes: number, logs: 'forward' | 'silent'): { inst: Instance; markExited: () => void } {
  const { config } = fn;
  const id = `${fn.name}-${++fn.seq}-${randomUUID().slice(0, 8)}`;
  const execArgv: string[] = [];
  const runner = config.bundled ? config.entry : RUNNER_PATH;
  if (isTs(runner) || isTs(config.entry)) execArgv.push('--import', tsxLoader());
  if (config.memoryLimitMb !== undefined) execArgv.push(`--max-old-space-size=${Math.max(16, Math.floor(config.memoryLimitMb))}`);
  execArgv.push(...(config.execArgv ?? []));
  const runnerConfig: RunnerConfig = {
    entry: config.entry,
    functionName: fn.name,
    instanceId: id,
    ...(config.memoryLimitMb !== undefined ? { memoryLimitMb: config.memoryLimitMb } : {}),
    maxPayloadBytes,
  };
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.NODE_TEST_CONTEXT; // do not let a child think it is a node:test subprocess
  delete env.NODE_OPTIONS; // the parent's flags are not the instance's (set it via config.env if needed)
  Object.assign(env, config.env ?? {});

  const spawnedAt = performance.now();
  const child = fork(runner, [JSON.stringify(runnerConfig)], {
    execArgv,
    env,
    serialization: 'advanced',
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let resolveExited!: () => void;
  const inst: Instance = {
    id,
    child,
    state: 'starting',
    spawnedAt,
    cold: true,
    invocations: 0,
    peakRssBytes: 0,
    stderrTail: '',
    exited: new Promise<void>((r) => (resolveExited = r)),
  };
  fn.instances.push(inst);

  pipeLogs(inst, child.stdout, false, logs);
  pipeLogs(inst, child.stderr, true, logs);
  return { inst, markExited: () => resolveExited() };
}

function pipeLogs(inst: Instance, stream: NodeJS.ReadableStream | null, isStderr: boolean, logs: 'forward' | 'silent'): void {
  if (!stream) return;
  let partial = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    if (isStderr) {
      inst.stderrTail = (inst.stderrTail + chunk).slice(-STDERR_TAIL_BYTES);
    }
    if (logs !== 'forward') return;
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) process.stderr.write(`[${inst.id}] ${line}\n`);
  });
  stream.on('end', () => {
    if (logs === 'forward' && partial) process.stderr.write(`[${inst.id}] ${partial}\n`);
  });
}

export function settleCall(call: Call, err: Error | undefined, result?: InvokeResult): void {
  if (call.settled) return;
  call.settled = true;
  if (err) call.reject(err);
  else call.resolve(result!);
}

// Idle instances must not keep the parent's event loop alive.
export function unrefInstance(inst: Instance): void {
  inst.child.unref();
  (inst.child as unknown as { channel?: { unref?: () => void } }).channel?.unref?.();
  (inst.child.stdout as unknown as { unref?: () => void } | null)?.unref?.();
  (inst.child.stderr as unknown as { unref?: () => void } | null)?.unref?.();
}

export function refInstance(inst: Instance): void {
  inst.child.ref();
  (inst.child as unknown as { channel?: { ref?: () => void } }).channel?.ref?.();
  (inst.child.stdout as unknown as { ref?: () => void } | null)?.ref?.();
  (inst.child.stderr as unknown as { ref?: () => void } | null)?.ref?.();
}

export function instanceStats(inst: Instance): InstanceStats {
  return {
    instanceId: inst.id,
    pid: inst.child.pid,
    state: inst.state,
    invocations: inst.invocations,
    initMs: inst.initMs,
    peakRssBytes: inst.peakRssBytes,
  };
}

export function remoteToFunctionError(functionName: string, e: RemoteError, requestId: string, instanceId: string, prefix = ''): FunctionError {
  return new FunctionError({
    functionName,
    requestId,
    instanceId,
    errorType: e.errorType,
    errorMessage: prefix + e.errorMessage,
    ...(e.details !== undefined ? { details: e.details } : {}),
    ...(e.stack !== undefined ? { remoteStack: e.stack } : {}),
  });
}

export const mb = (b: number) => Math.round(b / (1024 * 1024));

export function lastLines(s: string, n: number): string {
  return s.trimEnd().split('\n').slice(-n).join('\n');
}
