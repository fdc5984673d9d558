import { join, resolve } from 'node:path';
import type { Config } from '../config.ts';
import { FsStore } from '../store/fs-store.ts';
import type { ObjectStore } from '../store/object-store.ts';
import type { FunctionResources } from './cost.ts';
import { ServeError } from './errors.ts';

/** The embedded default store: a folder shared by every local function process. */
export function makeStore(config: Config): ObjectStore {
  switch (config.store) {
    case 'fs': return new FsStore(resolve(join(config.dataDir, 'store')));
    default: throw new ServeError(`unknown STORE ${config.store as string}`);
  }
}

export function functionResources(config: Config): Record<string, FunctionResources> {
  const f = config.functions;
  return {
    [f.handler.name]: { vcpu: f.handler.vcpu, memoryMb: f.handler.memoryMb },
    [f.master.name]: { vcpu: f.master.vcpu, memoryMb: f.master.memoryMb },
    [f.worker.name]: { vcpu: f.worker.vcpu, memoryMb: f.worker.memoryMb },
  };
}

/** Turns a zod failure on an incoming event into an error that names the event and field. */
export class BadEventError extends ServeError {
  override name = 'BadEventError';
}

export function parseEvent<T>(schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: { issues: { path: PropertyKey[]; message: string }[] } } }, event: Buffer, what: string): T {
  let json: unknown;
  try {
    json = JSON.parse(event.toString('utf8'));
  } catch {
    throw new BadEventError(`${what} event is not JSON`);
  }
  const r = schema.safeParse(json);
  if (!r.success) throw new BadEventError(`invalid ${what} event: ${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  return r.data;
}
