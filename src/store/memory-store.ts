import type { ObjectStore } from './object-store.ts';
import { ObjectNotFoundError, compareKeys, validateKey, validatePrefix, validateRange } from './errors.ts';

/**
 * In-memory ObjectStore for unit tests. Bodies are copied on put and on get, so
 * callers can never alias the stored bytes.
 */
export class MemoryStore implements ObjectStore {
  private readonly objects = new Map<string, Buffer>();

  async get(key: string, range?: { start: number; end: number }): Promise<Buffer> {
    validateKey(key);
    const body = this.objects.get(key);
    if (body === undefined) throw new ObjectNotFoundError(key);
    if (range === undefined) return Buffer.from(body);
    validateRange(key, range, body.length);
    return Buffer.from(body.subarray(range.start, range.end));
  }

  async put(key: string, body: Buffer | Uint8Array): Promise<void> {
    validateKey(key);
    if (!(body instanceof Uint8Array)) throw new TypeError(`put(${JSON.stringify(key)}): body must be a Buffer or Uint8Array`);
    this.objects.set(key, Buffer.from(body)); // Buffer.from(view) copies the bytes
  }

  async delete(keys: string[]): Promise<void> {
    for (const key of keys) validateKey(key);
    for (const key of keys) this.objects.delete(key);
  }

  async list(prefix: string): Promise<string[]> {
    validatePrefix(prefix);
    const out: string[] = [];
    for (const key of this.objects.keys()) if (key.startsWith(prefix)) out.push(key);
    return out.sort(compareKeys);
  }

  /** Number of stored objects (test helper). */
  get size(): number {
    return this.objects.size;
  }

  /** Total stored bytes (test helper). */
  get totalBytes(): number {
    let n = 0;
    for (const b of this.objects.values()) n += b.length;
    return n;
  }

  /** Remove everything (test helper). */
  clear(): void {
    this.objects.clear();
  }
}
