import { Redis } from 'ioredis';
import type { ByteRange, ObjectStore } from '../store/object-store.ts';
import { WaitClock } from './exchange.ts';
import { ExchangeAbortedError, ExchangeError, ExchangeTimeoutError } from './errors.ts';
import type { ExchangeBackend, ExchangeTraffic, TaskExchange } from './backend.ts';

/**
 * The exchange over Redis (ApsaraDB for Redis / Tair on FC, in the functions' VPC).
 *
 * Layout: exchange key `a/b/name` is the string `<prefix>{a/b}/name`, written with SET PX (the
 * TTL is the safety net should nobody clear it). Every put also appends to the stream
 * `<prefix>{a/b}/name#n`, and a waiter blocks in XREAD on that stream and on the abort key's,
 * from id 0: an entry written before the XREAD is seen at once, so a write between the miss and
 * the block is never lost, any number of waiters wake on one write (a list's BLPOP would wake
 * one), and an abort wakes every waiter of the request at once. The folder in braces is a hash
 * tag: a request's keys share a slot, so MULTI and multi-stream XREAD also work on a cluster
 * instance. Each put records its keys in the set `<prefix>{a/b}#keys`, which `clear` deletes.
 */
export interface RedisExchangeOptions {
  url: string;
  /** Prepended to every key (several deployments may share an instance). */
  keyPrefix?: string;
  /** Lifetime of every key, ms: longer than any request may run. */
  ttlMs: number;
  /** Keys written to the object store instead (the handler's input), read from it without waiting. */
  inStore?: (key: string) => boolean;
  /** Longest single XREAD BLOCK, ms: bounds how long a dropped connection can go unnoticed. */
  maxBlockMs?: number;
}

type Keys = { data: string; notify: string; registry: string };

const MAX_IDLE_BLOCKING = 16;

export class RedisExchangeBackend implements ExchangeBackend {
  readonly kind = 'redis';
  private readonly client: Redis;
  private readonly idle: Redis[] = [];
  private readonly all = new Set<Redis>();
  private closed = false;
  /** The connections' last error event: why commands fail while ioredis reconnects. */
  private lastError?: Error;

  constructor(readonly opts: RedisExchangeOptions) {
    this.client = this.connect();
  }

  private connect(): Redis {
    // RESP2: ApsaraDB instances compatible with Redis 5 do not speak HELLO 3. Few retries: a
    // request has a deadline, and an unreachable exchange should fail it, not stall it.
    const c = new Redis(this.opts.url, { protocol: 2, maxRetriesPerRequest: 2, connectTimeout: 5000, lazyConnect: false });
    c.on('error', (e: Error) => { this.lastError = e; });
    this.all.add(c);
    return c;
  }

  keys(key: string): Keys {
    const i = key.lastIndexOf('/');
    const tag = i < 0 ? key : key.slice(0, i);
    const p = `${this.opts.keyPrefix ?? 'fc-tiled-cnn:'}{${tag}}`;
    const data = `${p}/${i < 0 ? '' : key.slice(i + 1)}`;
    return { data, notify: `${data}#n`, registry: `${p}#keys` };
  }

  forTask(store: ObjectStore): TaskExchange {
    return new RedisExchange(this, store);
  }

  /** Runs `f` on the shared connection, turning connection failures into ExchangeErrors naming the key. */
  async command<T>(key: string, what: string, f: (c: Redis) => Promise<T>): Promise<T> {
    try {
      return await f(this.client);
    } catch (e) {
      throw new ExchangeError(`Redis exchange: ${what} ${key} failed: ${this.why(e)}`, { key, cause: e });
    }
  }

  private why(e: unknown): string {
    const m = (e as Error).message;
    return this.lastError && !m.includes(this.lastError.message) ? `${m} (last connection error: ${this.lastError.message})` : m;
  }

  /** A connection of its own for one blocking command (a blocked connection serves nobody else). */
  async blocking<T>(key: string, f: (c: Redis) => Promise<T>): Promise<T> {
    const c = this.idle.pop() ?? this.connect();
    try {
      return await f(c);
    } catch (e) {
      throw new ExchangeError(`Redis exchange: waiting for ${key} failed: ${this.why(e)}`, { key, cause: e });
    } finally {
      // Kept for the next wait, up to a worker's usual fan-in; more are closed.
      if (this.closed || this.idle.length >= MAX_IDLE_BLOCKING) { this.all.delete(c); c.disconnect(); } else this.idle.push(c);
    }
  }

  async clear(requestPrefix: string): Promise<void> {
    const { registry } = this.keys(requestPrefix.replace(/\/$/, '') + '/');
    // A put racing the clear adds to the registry again: a few rounds, then the TTL.
    for (let round = 0; round < 3; round++) {
      const members = await this.command(registry, 'listing', (c) => c.smembers(registry));
      await this.command(registry, 'deleting', (c) => c.unlink(registry, ...members));
      if (!members.length) return;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    // QUIT waits for a reply a client that is not connected will never get.
    await Promise.all([...this.all].map((c) => (c.status === 'ready' ? c.quit().then(() => undefined, () => c.disconnect()) : c.disconnect())));
    this.all.clear();
    this.idle.length = 0;
  }
}

type XReadReply = [stream: string, entries: [id: string, fields: string[]][]][] | null;

/** One task's exchange over the process's connections; counts its own traffic. */
export class RedisExchange implements TaskExchange {
  /** Polls stay 0: waits block in Redis, no reads are repeated. */
  readonly counters = new WaitClock();
  private readonly t: ExchangeTraffic = { requests: 0, bytesRead: 0, bytesWritten: 0 };

  constructor(private readonly backend: RedisExchangeBackend, private readonly store: ObjectStore) {}

  traffic(): ExchangeTraffic { return { ...this.t }; }

  async put(key: string, body: Buffer): Promise<void> {
    if (this.backend.opts.inStore?.(key)) return this.store.put(key, body);
    const k = this.backend.keys(key);
    const ttl = this.backend.opts.ttlMs;
    this.t.requests++;
    this.t.bytesWritten += body.length;
    const res = await this.backend.command(key, 'writing', (c) => c.multi()
      .set(k.data, body, 'PX', ttl)
      .xadd(k.notify, 'MAXLEN', '1', '*', 'w', '1')
      .pexpire(k.notify, ttl)
      .sadd(k.registry, k.data, k.notify)
      .pexpire(k.registry, ttl)
      .exec());
    const err = res?.find(([e]) => e)?.[0];
    if (!res || err) throw new ExchangeError(`Redis exchange: writing ${key} failed: ${err?.message ?? 'transaction discarded'}`, { key, cause: err });
  }

  async wait(key: string, o: { deadline: number; range?: ByteRange; abortKey?: string; what?: string }): Promise<Buffer> {
    if (this.backend.opts.inStore?.(key)) return this.store.get(key, o.range);
    const k = this.backend.keys(key);
    const streams = o.abortKey ? [k.notify, this.backend.keys(o.abortKey).notify] : [k.notify];
    const what = o.what ?? key;
    const t0 = performance.now();
    let attempt = t0;
    let notified = false;
    try {
      for (;;) {
        attempt = performance.now();
        const got = await this.read(key, k.data, o.range);
        if (got) return got;
        // The key's stream had an entry yet the value is gone: it expired or the request was cleared.
        if (notified) throw new ExchangeError(`${what} was written but is gone (expired, or the request was cleaned up)`, { key });
        const left = o.deadline - Date.now();
        if (left <= 0) throw new ExchangeTimeoutError(`timed out waiting for ${what}`, { key });
        const block = Math.max(1, Math.min(left, this.backend.opts.maxBlockMs ?? 10_000));
        this.t.requests++;
        const reply = await this.backend.blocking(key, (c) => c.call('XREAD', ['BLOCK', block, 'STREAMS', ...streams, ...streams.map(() => '0')]) as Promise<XReadReply>);
        const woken = new Set((reply ?? []).filter(([, entries]) => entries.length).map(([s]) => s));
        // Data first: a value that is there is returned even if the request was aborted meanwhile.
        if (woken.has(k.notify)) { notified = true; continue; }
        if (streams.length > 1 && woken.has(streams[1])) throw new ExchangeAbortedError(`gave up waiting for ${what}: the request was aborted`, { key });
      }
    } finally {
      this.counters.blocked(t0, attempt);
    }
  }

  /** The value (or its range) if the key exists: EXISTS and GET/GETRANGE in one transaction. */
  private async read(key: string, data: string, range?: ByteRange): Promise<Buffer | undefined> {
    this.t.requests++;
    const res = await this.backend.command(key, 'reading', (c) => {
      const m = c.multi().exists(data);
      // GETRANGE's end is inclusive, and 0..-1 would be the whole value: an empty range reads nothing.
      if (!range) m.getBuffer(data);
      else if (range.end > range.start) m.getrangeBuffer(data, range.start, range.end - 1);
      return m.exec();
    });
    const err = res?.find(([e]) => e)?.[0];
    if (!res || err) throw new ExchangeError(`Redis exchange: reading ${key} failed: ${err?.message ?? 'transaction discarded'}`, { key, cause: err });
    if (res[0][1] !== 1) return undefined;
    const buf = range && range.end <= range.start ? Buffer.alloc(0) : res[1][1] as Buffer;
    if (range && buf.length !== range.end - range.start) {
      throw new ExchangeError(`Redis exchange: ${key} has no bytes ${range.start}..${range.end} (read ${buf.length})`, { key });
    }
    this.t.bytesRead += buf.length;
    return buf;
  }
}
