/**
 * Entry point of one local function instance (a child process forked by
 * ProcessPoolInvoker). Loads the function module once, then serves one
 * invocation at a time over the IPC channel (advanced serialization, so
 * Buffers cross as binary).
 *
 * argv[2]: JSON RunnerConfig. Exits when the parent disconnects (parent died or closed the pool).
 */
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import type { FunctionContext, FunctionHandler } from './invoker.ts';

// ---- IPC protocol between ProcessPoolInvoker (parent) and this runner (child). Internal. ----

export interface RunnerConfig {
  entry: string;
  functionName: string;
  instanceId: string;
  memoryLimitMb?: number;
}

export interface RemoteError {
  errorType: string;
  errorMessage: string;
  details?: Record<string, unknown>;
  stack?: string;
}

/** Payloads are Buffers on the wire (advanced serialization); typed loosely to stay defensive. */
export type ParentMessage = { t: 'invoke'; id: number; requestId: string; payload: Buffer | Uint8Array };

export type RunnerMessage =
  | { t: 'ready'; importMs: number; maxRssBytes: number }
  | { t: 'init-error'; error: RemoteError }
  | { t: 'result'; id: number; payload: Buffer | Uint8Array; durationMs: number; maxRssBytes: number }
  | { t: 'error'; id: number; error: RemoteError; durationMs: number; maxRssBytes: number }
  | { t: 'oom'; rssBytes: number; maxRssBytes: number };

const send = (msg: RunnerMessage): Promise<void> =>
  new Promise((resolve) => {
    if (!process.connected || !process.send) return resolve();
    // The callback fires once the message is handed to the channel (or on error, e.g. channel closed).
    process.send(msg, undefined, {}, () => resolve());
  });

const maxRssBytes = (): number => process.resourceUsage().maxRSS * 1024;

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

async function main(): Promise<void> {
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
    const mod = (await import(pathToFileURL(cfg.entry).href)) as { handler?: unknown; default?: { handler?: unknown } };
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

  process.on('message', (raw: ParentMessage) => {
    if (raw?.t !== 'invoke') return;
    void (async () => {
      const ctx: FunctionContext = {
        requestId: raw.requestId,
        functionName: cfg.functionName,
        instanceId: cfg.instanceId,
        ...(cfg.memoryLimitMb !== undefined ? { memoryLimitMb: cfg.memoryLimitMb } : {}),
      };
      const event = Buffer.isBuffer(raw.payload)
        ? raw.payload
        : Buffer.from(raw.payload.buffer, raw.payload.byteOffset, raw.payload.byteLength);
      const t0 = performance.now();
      try {
        const out = await handler(event, ctx);
        const durationMs = performance.now() - t0;
        let payload: Buffer;
        if (typeof out === 'string') payload = Buffer.from(out, 'utf8');
        else if (Buffer.isBuffer(out)) payload = out;
        else if (out instanceof Uint8Array) payload = Buffer.from(out.buffer, out.byteOffset, out.byteLength);
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

void main();
