/**
 * ProcessPoolInvoker: the local Invoker. Emulates Function Compute with one
 * Node child process per function instance:
 * - instance concurrency 1; the pool grows to `maxInstances` per function and
 *   further invocations wait in a FIFO queue;
 * - idle instances are reused (warm); the first call on a new instance is a
 *   cold start and reports `initMs` (fork + Node boot + loading the module);
 * - a crash / exit / signal during a call → FunctionCrashedError; exceeding the
 *   timeout → the instance is killed, FunctionTimeoutError; exceeding
 *   `memoryLimitMb` → the instance is killed, FunctionCrashedError
 *   ("out of memory"); a thrown error → FunctionError and the instance lives on.
 *   Dead instances are replaced on demand.
 * - nested invocation: each handler gets `context.invoker`, which relays to this
 *   pool (`invoke-req`/`invoke-res` over IPC), so functions can invoke functions
 *   (handler → master → workers) with the callee's limits and errors applied.
 *   If the calling instance dies first, its sub-calls still run to completion
 *   and their replies are dropped.
 *
 * This module is the scheduler (queue, dispatch, timeouts, kills, exits, stats); the instance
 * process is in pool-instance.ts and the nested-invocation relay in pool-relay.ts.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { InvokeOptions, InvokeResult, Invoker } from './invoker.ts';
import {
  DEFAULT_MAX_PAYLOAD_BYTES,
  FunctionCrashedError,
  FunctionNotFoundError,
  FunctionTimeoutError,
  InvokeError,
  PayloadTooLargeError,
} from './errors.ts';
import type { ParentMessage, RunnerMessage } from './instance-runner.ts';
import {
  forkInstance, instanceStats, lastLines, mb, refInstance, remoteToFunctionError, settleCall, unrefInstance,
  type Call, type FunctionState, type FunctionStats, type Instance,
} from './pool-instance.ts';
import { NestedCallRelay } from './pool-relay.ts';

export interface LocalFunctionConfig {
  /** Absolute path of a .ts/.js module exporting `handler(event: Buffer, context: FunctionContext)`. */
  entry: string;
  /**
   * `entry` is an instance bundle: the runner and the function in one script (see
   * src/deploy/local-bundles.ts), forked directly. Error classes then have one identity per
   * instance, as in a deployed function; a runner and a function bundled apart would each carry
   * their own copy, and `instanceof` would fail between them.
   */
  bundled?: boolean;
  /** Maximum concurrently running instances (each serves one call at a time). */
  maxInstances: number;
  /** Per-invocation timeout, measured from dispatch to the instance (queue wait excluded). */
  timeoutMs: number;
  /** Instance memory limit: exceeding it (RSS) kills the instance. Also sets --max-old-space-size. */
  memoryLimitMb?: number;
  /** Extra environment variables for the instance (merged over the parent's environment). */
  env?: Record<string, string>;
  /** Extra Node flags for the instance. */
  execArgv?: string[];
  /** Limit for starting an instance (spawn + module load). Default max(timeoutMs, 60 s). */
  initTimeoutMs?: number;
}

export interface ProcessPoolOptions {
  functions: Record<string, LocalFunctionConfig>;
  /** Request and response payload limit in bytes. Default 32 MB (FC synchronous invocation). */
  maxPayloadBytes?: number;
  /**
   * Instance stdout/stderr: 'forward' (default) copies each line to the parent's stderr prefixed
   * with `[instanceId]`; 'silent' drops it. The last few KB of stderr are always kept for crash messages.
   */
  logs?: 'forward' | 'silent';
}

const MAX_RETIRED = 100;

export class ProcessPoolInvoker implements Invoker {
  private readonly fns = new Map<string, FunctionState>();
  private readonly maxPayloadBytes: number;
  private readonly logs: 'forward' | 'silent';
  private closed = false;
  private callSeq = 0;
  private readonly nested = new NestedCallRelay(this);

  constructor(options: ProcessPoolOptions) {
    this.maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
    this.logs = options.logs ?? 'forward';
    for (const [name, config] of Object.entries(options.functions)) {
      if (!isAbsolute(config.entry)) throw new TypeError(`function ${name}: entry must be an absolute path (got ${config.entry})`);
      if (!existsSync(config.entry)) throw new TypeError(`function ${name}: entry ${config.entry} does not exist`);
      if (!Number.isInteger(config.maxInstances) || config.maxInstances < 1) throw new TypeError(`function ${name}: maxInstances must be an integer >= 1`);
      if (!(config.timeoutMs > 0)) throw new TypeError(`function ${name}: timeoutMs must be > 0`);
      if (config.memoryLimitMb !== undefined && !(config.memoryLimitMb > 0)) throw new TypeError(`function ${name}: memoryLimitMb must be > 0`);
      this.fns.set(name, {
        name,
        config,
        instances: [],
        queue: [],
        retired: [],
        seq: 0,
        counters: {
          coldStarts: 0, invocations: 0, errors: 0, crashes: 0, timeouts: 0, oomKills: 0,
          nestedCalls: 0, nestedRepliesDropped: 0, maxPeakRssBytes: 0,
        },
      });
    }
  }

  invoke(functionName: string, payload: Buffer | Uint8Array, options?: InvokeOptions): Promise<InvokeResult> {
    if (this.closed) return Promise.reject(new InvokeError(`invoker is closed (invoking ${functionName})`, { functionName }));
    const fn = this.fns.get(functionName);
    if (!fn) return Promise.reject(new FunctionNotFoundError(functionName, { known: [...this.fns.keys()] }));
    if (!(payload instanceof Uint8Array)) {
      return Promise.reject(new TypeError(`invoke(${functionName}): payload must be a Buffer`));
    }
    const body = Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    if (body.length > this.maxPayloadBytes) {
      return Promise.reject(
        new PayloadTooLargeError({ functionName, sizeBytes: body.length, maxBytes: this.maxPayloadBytes, direction: 'request' }),
      );
    }
    return new Promise<InvokeResult>((resolve, reject) => {
      const call: Call = { requestId: randomUUID(), payload: body, resolve, reject, settled: false, deadline: options?.deadline };
      if (options?.urgent) fn.queue.unshift(call);
      else fn.queue.push(call);
      this.pump(fn);
    });
  }

  invokeGang(functionName: string, payloads: Buffer[], options?: Pick<InvokeOptions, 'deadline'>): Promise<InvokeResult>[] {
    const fn = this.fns.get(functionName);
    if (fn && payloads.length > fn.config.maxInstances) {
      const err = new InvokeError(`${functionName}: ${payloads.length} calls must run at once but maxInstances is ${fn.config.maxInstances}`, { functionName });
      return payloads.map(() => Promise.reject(err));
    }
    if (!fn || this.closed || payloads.length <= 1) return payloads.map((p) => this.invoke(functionName, p, options));
    const gang = { size: payloads.length, started: false };
    // Queued contiguously and synchronously: pump() sees the whole gang at the head at once.
    const calls = payloads.map((payload) => new Promise<InvokeResult>((resolve, reject) => {
      fn.queue.push({ requestId: randomUUID(), payload, resolve, reject, settled: false, gang, deadline: options?.deadline });
    }));
    this.pump(fn);
    return calls;
  }

  /**
   * Start instances ahead of traffic (like FC provisioned instances) until `count` (default
   * maxInstances) are alive. Resolves when they are ready; their first call is not a cold start.
   * Rejects with the first startup failure.
   */
  async prewarm(functionName: string, count?: number): Promise<void> {
    if (this.closed) throw new InvokeError(`invoker is closed (prewarming ${functionName})`, { functionName });
    const fn = this.fns.get(functionName);
    if (!fn) throw new FunctionNotFoundError(functionName, { known: [...this.fns.keys()] });
    const target = Math.min(count ?? fn.config.maxInstances, fn.config.maxInstances);
    const waits: Promise<void>[] = [];
    while (fn.instances.length < target) {
      const inst = this.spawn(fn);
      inst.cold = false;
      waits.push(new Promise<void>((resolve, reject) => {
        inst.onReady = (err) => (err ? reject(err) : resolve());
      }));
    }
    await Promise.all(waits);
  }

  /** Per-function counters and instance details. */
  stats(): Record<string, FunctionStats> {
    const out: Record<string, FunctionStats> = {};
    for (const fn of this.fns.values()) {
      const alive = fn.instances.filter((i) => i.state !== 'dead');
      out[fn.name] = {
        instancesAlive: alive.length,
        busy: alive.filter((i) => i.state === 'busy').length,
        queued: fn.queue.length,
        ...fn.counters,
        instances: [...alive.map(instanceStats), ...fn.retired],
      };
    }
    return out;
  }

  /** Kill all instances; pending and queued calls reject with InvokeError. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    const exits: Promise<void>[] = [];
    for (const fn of this.fns.values()) {
      for (const call of fn.queue.splice(0)) {
        settleCall(call, new InvokeError(`invoker closed before ${fn.name} could run`, { functionName: fn.name, requestId: call.requestId }));
      }
      for (const inst of [...fn.instances]) {
        this.kill(fn, inst, 'closed');
        exits.push(inst.exited);
      }
    }
    await Promise.all(exits);
  }

  // ---------------------------------------------------------------- internals

  private pump(fn: FunctionState): void {
    while (fn.queue.length > 0 && !this.closed) {
      const gang = fn.queue[0].gang;
      if (gang && !gang.started) {
        const free = fn.instances.filter((i) => i.state === 'idle').length + fn.config.maxInstances - fn.instances.length;
        if (free < gang.size) break;
        gang.started = true;
      }
      const idle = fn.instances.find((i) => i.state === 'idle');
      if (idle) {
        this.dispatch(fn, idle, fn.queue.shift()!);
        continue;
      }
      if (fn.instances.length < fn.config.maxInstances) {
        const inst = this.spawn(fn);
        inst.reserved = fn.queue.shift()!;
        continue;
      }
      break;
    }
  }

  private spawn(fn: FunctionState): Instance {
    const { config } = fn;
    const { inst, markExited } = forkInstance(fn, this.maxPayloadBytes, this.logs);
    const { child, id } = inst;

    const initTimeoutMs = config.initTimeoutMs ?? Math.max(config.timeoutMs, 60_000);
    inst.timer = setTimeout(() => {
      const call = inst.reserved;
      inst.reserved = undefined;
      fn.counters.timeouts++;
      this.kill(fn, inst, 'timeout');
      if (call) {
        settleCall(call, new FunctionTimeoutError(
          `${fn.name}: instance ${id} did not finish initialising within ${initTimeoutMs} ms`,
          { functionName: fn.name, requestId: call.requestId, instanceId: id, timeoutMs: initTimeoutMs },
        ));
      }
      this.pump(fn);
    }, initTimeoutMs);

    child.on('message', (msg: RunnerMessage) => this.onMessage(fn, inst, msg));
    let exitHandled = false;
    const onExit = (code: number | null, signal: NodeJS.Signals | null, spawnError?: Error) => {
      if (exitHandled) return;
      exitHandled = true;
      this.onExit(fn, inst, code, signal, spawnError);
      markExited();
    };
    // 'exit' may fire before stdio is drained, so prefer 'close' (complete stderr tail), but do not
    // wait long for it: a grandchild process holding the pipes open would delay 'close' indefinitely.
    child.on('close', (code, signal) => onExit(code, signal));
    child.on('exit', (code, signal) => {
      setTimeout(() => onExit(code, signal), 200);
    });
    child.on('error', (err) => {
      // Spawn failure (or a failed kill/send). If the process never started, no 'close' follows.
      if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) onExit(child.exitCode, child.signalCode, err);
    });
    return inst;
  }

  private onMessage(fn: FunctionState, inst: Instance, msg: RunnerMessage): void {
    if (inst.state === 'dead') return;
    switch (msg.t) {
      case 'ready': {
        clearTimeout(inst.timer);
        inst.timer = undefined;
        inst.initMs = performance.now() - inst.spawnedAt;
        this.notePeak(fn, inst, msg.maxRssBytes);
        fn.counters.coldStarts++;
        inst.state = 'idle';
        unrefInstance(inst);
        inst.onReady?.();
        inst.onReady = undefined;
        const call = inst.reserved;
        inst.reserved = undefined;
        if (call && !call.settled) this.dispatch(fn, inst, call);
        else this.pump(fn);
        return;
      }
      case 'init-error': {
        const call = inst.reserved;
        inst.reserved = undefined;
        const err = remoteToFunctionError(fn.name, msg.error, call?.requestId ?? '', inst.id, 'initialization failed: ');
        inst.onReady?.(err);
        inst.onReady = undefined;
        this.kill(fn, inst, 'protocol');
        if (call) {
          fn.counters.errors++;
          settleCall(call, err);
        }
        this.pump(fn);
        return;
      }
      case 'oom': {
        this.notePeak(fn, inst, msg.maxRssBytes);
        this.oomKill(fn, inst, msg.rssBytes);
        return;
      }
      case 'invoke-req': {
        this.nested.relay(fn, inst, msg);
        return;
      }
      case 'result':
      case 'error': {
        const cur = inst.current;
        if (!cur || cur.id !== msg.id) return; // stale (e.g. after a timeout)
        clearTimeout(inst.timer);
        inst.timer = undefined;
        inst.current = undefined;
        this.notePeak(fn, inst, msg.maxRssBytes);
        const limit = fn.config.memoryLimitMb;
        if (limit !== undefined && msg.maxRssBytes > limit * 1024 * 1024) {
          // Over the limit at some point during the call: FC would have killed the instance.
          inst.current = cur;
          this.oomKill(fn, inst, msg.maxRssBytes);
          return;
        }
        const { call, coldStart } = cur;
        inst.state = 'idle';
        unrefInstance(inst);
        if (msg.t === 'result') {
          const payload = Buffer.isBuffer(msg.payload)
            ? msg.payload
            : Buffer.from(msg.payload.buffer, msg.payload.byteOffset, msg.payload.byteLength);
          if (payload.length > this.maxPayloadBytes) {
            fn.counters.errors++;
            settleCall(call, new PayloadTooLargeError({
              functionName: fn.name, requestId: call.requestId, instanceId: inst.id,
              sizeBytes: payload.length, maxBytes: this.maxPayloadBytes, direction: 'response',
            }));
          } else {
            const result: InvokeResult = {
              payload,
              instanceId: inst.id,
              coldStart,
              durationMs: msg.durationMs,
              peakRssBytes: msg.maxRssBytes,
            };
            if (coldStart && inst.initMs !== undefined) result.initMs = inst.initMs;
            settleCall(call, undefined, result);
          }
        } else {
          fn.counters.errors++;
          settleCall(call, remoteToFunctionError(fn.name, msg.error, call.requestId, inst.id));
        }
        this.pump(fn);
        return;
      }
    }
  }

  private dispatch(fn: FunctionState, inst: Instance, call: Call): void {
    const id = ++this.callSeq;
    const coldStart = inst.cold;
    inst.cold = false;
    inst.state = 'busy';
    inst.invocations++;
    fn.counters.invocations++;
    inst.current = { call, id, coldStart };
    refInstance(inst);
    // Queue time counts against the caller's deadline, not against the function's own timeout.
    const timeoutMs = Math.max(1, Math.min(fn.config.timeoutMs, call.deadline === undefined ? Infinity : call.deadline - Date.now()));
    inst.timer = setTimeout(() => {
      if (inst.current?.id !== id) return;
      inst.current = undefined;
      fn.counters.timeouts++;
      this.kill(fn, inst, 'timeout');
      settleCall(call, new FunctionTimeoutError(
        `${fn.name}: invocation ${call.requestId} timed out after ${timeoutMs} ms (instance ${inst.id} killed)`,
        { functionName: fn.name, requestId: call.requestId, instanceId: inst.id, timeoutMs },
      ));
      this.pump(fn);
    }, timeoutMs);
    const msg: ParentMessage = { t: 'invoke', id, requestId: call.requestId, payload: call.payload };
    try {
      inst.child.send(msg, (err) => {
        if (err && inst.current?.id === id) {
          // Channel broke: the process is dying; the exit handler reports the crash.
          this.kill(fn, inst, 'protocol');
        }
      });
    } catch (err) {
      // Synchronous failure (e.g. channel already closed). Same handling.
      this.kill(fn, inst, 'protocol');
    }
  }

  private oomKill(fn: FunctionState, inst: Instance, rssBytes: number): void {
    if (inst.state === 'dead') return;
    fn.counters.oomKills++;
    const call = inst.current?.call ?? inst.reserved;
    inst.current = undefined;
    inst.reserved = undefined;
    clearTimeout(inst.timer);
    this.kill(fn, inst, 'oom');
    if (call) {
      fn.counters.crashes++;
      settleCall(call, new FunctionCrashedError(
        `${fn.name}: instance ${inst.id} killed: out of memory (peak RSS ${mb(rssBytes)} MB > limit ${fn.config.memoryLimitMb} MB)`,
        { functionName: fn.name, requestId: call.requestId, instanceId: inst.id, outOfMemory: true, signal: 'SIGKILL' },
      ));
    }
    this.pump(fn);
  }

  /** Mark dead, remove from the pool (so a replacement can start at once) and SIGKILL. */
  private kill(fn: FunctionState, inst: Instance, reason: NonNullable<Instance['killReason']>): void {
    if (inst.state !== 'dead') {
      inst.killReason ??= reason;
      this.retire(fn, inst);
    }
    if (inst.child.exitCode === null && inst.child.signalCode === null) {
      refInstance(inst); // keep the event loop alive until the exit is observed (close() awaits it)
      try {
        inst.child.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }

  private retire(fn: FunctionState, inst: Instance): void {
    inst.state = 'dead';
    if (inst.onReady) {
      const why = inst.killReason === 'timeout' ? 'did not become ready in time' : inst.killReason === 'closed' ? 'was closed' : 'died';
      inst.onReady(new InvokeError(`${fn.name}: instance ${inst.id} ${why} while starting`, { functionName: fn.name, instanceId: inst.id }));
      inst.onReady = undefined;
    }
    clearTimeout(inst.timer);
    inst.timer = undefined;
    const i = fn.instances.indexOf(inst);
    if (i >= 0) fn.instances.splice(i, 1);
    fn.retired.unshift(instanceStats(inst));
    if (fn.retired.length > MAX_RETIRED) fn.retired.length = MAX_RETIRED;
  }

  private onExit(fn: FunctionState, inst: Instance, code: number | null, signal: NodeJS.Signals | null, spawnError?: Error): void {
    const wasDead = inst.state === 'dead';
    const call = inst.current?.call ?? inst.reserved;
    const starting = inst.reserved !== undefined;
    inst.current = undefined;
    inst.reserved = undefined;
    if (!wasDead) this.retire(fn, inst);
    else clearTimeout(inst.timer);
    if (call && !call.settled) {
      if (inst.killReason === 'closed') {
        settleCall(call, new InvokeError(`invoker closed while ${fn.name} was running`, { functionName: fn.name, requestId: call.requestId, instanceId: inst.id }));
      } else {
        fn.counters.crashes++;
        const heapOom = /heap out of memory|Allocation failed/i.test(inst.stderrTail);
        if (heapOom) fn.counters.oomKills++;
        const how = spawnError
          ? `failed to start: ${spawnError.message}`
          : signal
            ? `was killed by signal ${signal}`
            : `exited with code ${code}`;
        const phase = starting ? ' during initialization' : '';
        const tail = lastLines(inst.stderrTail, 6);
        settleCall(call, new FunctionCrashedError(
          `${fn.name}: instance ${inst.id} ${how}${phase}${heapOom ? ' (out of memory: JavaScript heap limit reached)' : ''}` +
            (tail ? `\n--- instance stderr (tail) ---\n${tail}` : ''),
          { functionName: fn.name, requestId: call.requestId, instanceId: inst.id, exitCode: code, signal, outOfMemory: heapOom, cause: spawnError },
        ));
      }
    }
    this.pump(fn);
  }

  private notePeak(fn: FunctionState, inst: Instance, bytes: number): void {
    if (bytes > inst.peakRssBytes) inst.peakRssBytes = bytes;
    if (bytes > fn.counters.maxPeakRssBytes) fn.counters.maxPeakRssBytes = bytes;
  }

}

