import { readFileSync } from 'node:fs';
/**
 * Entry point of one local function instance (a child process forked by
 * ProcessPoolInvoker). Loads the function module once, then serves one
 * invocation at a time over the IPC channel (advanced serialization, so
 * Buffers cross as binary).
 *
 * Handlers get `context.invoker`, a RelayInvoker: nested invocations are sent to the parent
 * (`invoke-req`), which runs them through its own pool and replies (`invoke-res`).
 *
 * argv[2]: JSON RunnerConfig. Exits when the parent disconnects (parent died or closed the pool).
 * Not importable: loading this module starts the runner.
 */
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { InvokeError, PayloadTooLargeError, deserializeInvokeError } from './errors.ts';
import type { SerializedInvokeError } from './errors.ts';
import type { FunctionContext, FunctionHandler, InvokeOptions, InvokeResult, Invoker } from './invoker.ts';

// ---- IPC protocol between ProcessPoolInvoker (parent) and this runner (child). Internal. ----

export interface RunnerConfig {
  entry: string;
  functionName: string;
  instanceId: string;
  memoryLimitMb?: number;
  /** The pool's payload limit, checked before relaying a nested invocation's request. */
  maxPayloadBytes?: number;
}

export interface RemoteError {
  errorType: string;
  errorMessage: string;
  details?: Record<string, unknown>;
  stack?: string;
}

/** InvokeResult as it crosses the channel. */
export type WireInvokeResult = Omit<InvokeResult, 'payload'> & { payload: Buffer | Uint8Array };

/** Payloads are Buffers on the wire (advanced serialization); typed loosely to stay defensive. */
export type ParentMessage =
  | { t: 'invoke'; id: number; requestId: string; payload: Buffer | Uint8Array }
  /** Reply to a nested invocation (`invoke-req` with the same callId). */
  | { t: 'invoke-res'; callId: number; result: WireInvokeResult; error?: undefined }
  | { t: 'invoke-res'; callId: number; error: SerializedInvokeError; result?: undefined };

export type RunnerMessage =
  | { t: 'ready'; importMs: number; maxRssBytes: number }
  | { t: 'init-error'; error: RemoteError }
  | { t: 'result'; id: number; payload: Buffer | Uint8Array; durationMs: number; maxRssBytes: number }
  | { t: 'error'; id: number; error: RemoteError; durationMs: number; maxRssBytes: number }
  | { t: 'oom'; rssBytes: number; maxRssBytes: number }
  /** Nested invocation from the handler via context.invoker; callIds are per instance. */
  | { t: 'invoke-req'; callId: number; functionName: string; payload: Buffer | Uint8Array; gang?: { id: number; size: number }; urgent?: boolean; deadline?: number };

const send = (msg: RunnerMessage): Promise<void> =>
  new Promise((resolve) => {
    if (!process.connected || !process.send) return resolve();
    // The callback fires once the message is handed to the channel (or on error, e.g. channel closed).
    process.send(msg, undefined, {}, () => resolve());
  });

const toBuffer = (p: Buffer | Uint8Array): Buffer =>
  Buffer.isBuffer(p) ? p : Buffer.from(p.buffer, p.byteOffset, p.byteLength);

interface PendingRelay {
  functionName: string;
  resolve: (r: InvokeResult) => void;
  reject: (e: Error) => void;
  /** Call site, used as the stack of a rejection. */
  site: { stack?: string };
}

/**
 * `context.invoker` inside an instance: relays invocations to the parent ProcessPoolInvoker and
 * rehydrates its errors into the classes of ./errors.ts. Any number of calls may be in flight.
 * (State is in #private fields, so JSON.stringify(context) stays small and acyclic.)
 */
class RelayInvoker implements Invoker {
  readonly #pending = new Map<number, PendingRelay>();
  readonly #maxPayloadBytes: number | undefined;
  #seq = 0;

  constructor(maxPayloadBytes: number | undefined) {
    this.#maxPayloadBytes = maxPayloadBytes;
    this.invoke = this.invoke.bind(this); // usable detached: `const { invoke } = context.invoker`
    this.invokeGang = this.invokeGang.bind(this);
  }

  invokeGang(functionName: string, payloads: Buffer[], options?: Pick<InvokeOptions, 'deadline'>): Promise<InvokeResult>[] {
    const gang = { id: this.#seq + 1, size: payloads.length };
    return payloads.map((p) => this.send(functionName, p, { gang, deadline: options?.deadline }));
  }

  invoke(functionName: string, payload: Buffer | Uint8Array, options?: InvokeOptions): Promise<InvokeResult> {
    return this.send(functionName, payload, { urgent: options?.urgent, deadline: options?.deadline });
  }

  private send(functionName: string, payload: Buffer | Uint8Array, extra: { gang?: { id: number; size: number }; urgent?: boolean; deadline?: number }): Promise<InvokeResult> {
    const site: { stack?: string } = {};
    Error.captureStackTrace(site, RelayInvoker.prototype.invoke);
    if (typeof functionName !== 'string') {
      return Promise.reject(new TypeError(`invoke(): functionName must be a string (got ${typeof functionName})`));
    }
    if (!(payload instanceof Uint8Array)) {
      return Promise.reject(new TypeError(`invoke(${functionName}): payload must be a Buffer`));
    }
    if (this.#maxPayloadBytes !== undefined && payload.byteLength > this.#maxPayloadBytes) {
      // Same error the parent would raise, without shipping the oversized payload over IPC first.
      return Promise.reject(new PayloadTooLargeError({
        functionName, sizeBytes: payload.byteLength, maxBytes: this.#maxPayloadBytes, direction: 'request',
      }));
    }
    if (!process.connected || !process.send) {
      return Promise.reject(new InvokeError(`cannot invoke ${functionName}: disconnected from the invoker`, { functionName }));
    }
    const callId = ++this.#seq;
    return new Promise<InvokeResult>((resolve, reject) => {
      this.#pending.set(callId, { functionName, resolve, reject, site });
      const msg: RunnerMessage = { t: 'invoke-req', callId, functionName, payload, ...(extra.gang ? { gang: extra.gang } : {}), ...(extra.urgent ? { urgent: true } : {}), ...(extra.deadline !== undefined ? { deadline: extra.deadline } : {}) };
      const failed = (err: unknown) => {
        if (!this.#pending.delete(callId)) return;
        reject(new InvokeError(`cannot invoke ${functionName}: ${err instanceof Error ? err.message : String(err)}`, { functionName, cause: err }));
      };
      try {
        process.send!(msg, undefined, {}, (err: Error | null) => {
          if (err) failed(err);
        });
      } catch (err) {
        failed(err);
      }
    });
  }

  /** Settle the call answered by an `invoke-res` message (unknown callIds are ignored). */
  onResponse(msg: Extract<ParentMessage, { t: 'invoke-res' }>): void {
    const p = this.#pending.get(msg.callId);
    if (!p) return;
    this.#pending.delete(msg.callId);
    if (msg.error !== undefined) {
      const err = deserializeInvokeError(msg.error, p.functionName);
      // Point the stack at the handler's call rather than at this message handler.
      const frames = p.site.stack?.split('\n').slice(1).join('\n');
      err.stack = `${err.name}: ${err.message}${frames ? `\n${frames}` : ''}`;
      p.reject(err);
      return;
    }
    const r = msg.result;
    const result: InvokeResult = {
      payload: toBuffer(r.payload),
      instanceId: r.instanceId,
      coldStart: r.coldStart,
      durationMs: r.durationMs,
    };
    if (r.initMs !== undefined) result.initMs = r.initMs;
    if (r.peakRssBytes !== undefined) result.peakRssBytes = r.peakRssBytes;
    p.resolve(result);
  }
}

/**
 * Peak RSS of this process. On Linux, getrusage's maxRSS of a forked child starts at the parent's
 * RSS at fork time (a child of a 640 MB parent reports >= 600 MB), so read the kernel's own
 * high-water mark (VmHWM) instead, and fall back to maxRSS elsewhere.
 */
const maxRssBytes = (): number => {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch { /* not Linux */ }
  return process.resourceUsage().maxRSS * 1024;
};

function jsonClone(v: unknown): unknown {
  try {
    const s = JSON.stringify(v);
    return s === undefined ? undefined : JSON.parse(s);
  } catch {
    return undefined; // circular or BigInt: not transferable
  }
}

function serializeError(err: unknown): RemoteError {
  if (err instanceof Error || (typeof err === 'object' && err !== null && 'message' in err)) {
    const e = err as Error & { details?: unknown; context?: unknown; code?: unknown };
    let errorType = typeof e.name === 'string' && e.name ? e.name : 'Error';
    const ctorName = (e as object).constructor?.name;
    // Custom subclasses that forgot to set `name` still report their class name.
    if (errorType === 'Error' && ctorName && ctorName !== 'Error' && ctorName !== 'Object') errorType = ctorName;
    let details: Record<string, unknown> | undefined;
    const raw = e.details !== undefined ? e.details : e.context;
    if (raw !== undefined) {
      const cloned = jsonClone(raw);
      if (cloned !== undefined) {
        details = typeof cloned === 'object' && cloned !== null && !Array.isArray(cloned)
          ? (cloned as Record<string, unknown>)
          : { value: cloned };
      }
    }
    if (e.code !== undefined && (details === undefined || !('code' in details))) {
      const code = jsonClone(e.code);
      if (code !== undefined) details = { ...(details ?? {}), code };
    }
    return { errorType, errorMessage: String(e.message), details, stack: typeof e.stack === 'string' ? e.stack : undefined };
  }
  return { errorType: 'Error', errorMessage: typeof err === 'string' ? err : String(jsonClone(err) ?? err) };
}

/**
 * Runs this process as one function instance. `load` imports the function module; by default
 * the module named by the runner config, and in an instance bundle the module bundled with it.
 */
export async function runInstance(load?: () => Promise<unknown>): Promise<void> {
  if (!process.send) {
    console.error('instance-runner must be started by ProcessPoolInvoker (needs an IPC channel)');
    process.exit(2);
  }
  const cfg = JSON.parse(process.argv[2] ?? '{}') as RunnerConfig;
  // Die with the parent: the IPC channel closes when the parent exits, is killed, or disconnects us.
  process.on('disconnect', () => process.exit(0));

  if (cfg.memoryLimitMb) {
    // FC kills instances that exceed their memory; emulate it for handlers that grow memory
    // asynchronously. (Synchronous spikes are caught by the parent's post-invocation maxRSS check.)
    const limit = cfg.memoryLimitMb * 1024 * 1024;
    let reported = false;
    setInterval(() => {
      const rss = process.memoryUsage.rss();
      if (rss > limit && !reported) {
        reported = true;
        void send({ t: 'oom', rssBytes: rss, maxRssBytes: maxRssBytes() });
        setTimeout(() => process.exit(137), 2000).unref(); // the parent normally SIGKILLs us first
      }
    }, 25).unref();
  }

  const importStart = performance.now();
  let handler: FunctionHandler;
  try {
    const mod = (await (load ? load() : import(pathToFileURL(cfg.entry).href))) as { handler?: unknown; default?: { handler?: unknown } };
    const h = mod.handler ?? mod.default?.handler;
    if (typeof h !== 'function') {
      const err = new Error(`module ${cfg.entry} does not export a function named "handler"`);
      err.name = 'HandlerNotFound';
      throw err;
    }
    handler = h as FunctionHandler;
  } catch (err) {
    await send({ t: 'init-error', error: serializeError(err) });
    process.exit(1);
  }
  const importMs = performance.now() - importStart;
  const relay = new RelayInvoker(cfg.maxPayloadBytes);

  process.on('message', (raw: ParentMessage) => {
    if (raw?.t === 'invoke-res') {
      relay.onResponse(raw);
      return;
    }
    if (raw?.t !== 'invoke') return;
    void (async () => {
      const ctx: FunctionContext = {
        requestId: raw.requestId,
        functionName: cfg.functionName,
        instanceId: cfg.instanceId,
        ...(cfg.memoryLimitMb !== undefined ? { memoryLimitMb: cfg.memoryLimitMb } : {}),
        invoker: relay,
      };
      const event = toBuffer(raw.payload);
      const t0 = performance.now();
      try {
        const out = await handler(event, ctx);
        const durationMs = performance.now() - t0;
        let payload: Buffer;
        if (typeof out === 'string') payload = Buffer.from(out, 'utf8');
        else if (Buffer.isBuffer(out)) payload = out;
        else if (out instanceof Uint8Array) payload = toBuffer(out);
        else {
          const err = new TypeError(`handler returned ${out === null ? 'null' : typeof out}; expected Buffer, Uint8Array or string`);
          err.name = 'InvalidResponseError';
          throw err;
        }
        await send({ t: 'result', id: raw.id, payload, durationMs, maxRssBytes: maxRssBytes() });
      } catch (err) {
        const durationMs = performance.now() - t0;
        await send({ t: 'error', id: raw.id, error: serializeError(err), durationMs, maxRssBytes: maxRssBytes() });
      }
    })();
  });

  await send({ t: 'ready', importMs, maxRssBytes: maxRssBytes() });
}
