import { z } from 'zod';
import type { ObjectStore } from '../store/object-store.ts';
import { CountingStore } from '../store/counting-store.ts';
import type { FloatTensor } from '../runtime/ort.ts';
import { cropRegion, pasteRegion } from '../tensor/nchw.ts';
import type { TileRegion } from '../tiling/geometry.ts';
import { runTile } from '../exec/tile.ts';
import type { ArtifactCache } from './artifacts.ts';
import { exchangeTileKey, type Piece } from './exchange.ts';
import { requestKeys } from './keys.ts';
import { decodeTensor, encodeTensor } from './tile-codec.ts';
import { ServeError, TileFormatError } from './errors.ts';

export const workerTaskSchema = z.object({
  requestId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
  planKey: z.string().min(1),
  stage: z.number().int().nonnegative(),
  tile: z.number().int().nonnegative(),
}).strict();
export type WorkerTask = z.infer<typeof workerTaskSchema>;

export interface WorkerReport {
  stage: number;
  tile: number;
  ms: { load: number; read: number; compute: number; write: number; total: number };
  sessionCached: boolean;
  bytesRead: number;
  bytesWritten: number;
  storeRequests: number;
}

const relative = (r: TileRegion, origin: TileRegion): TileRegion => ({ y0: r.y0 - origin.y0, y1: r.y1 - origin.y0, x0: r.x0 - origin.x0, x1: r.x1 - origin.x0 });

/** Reads the pieces that make up `region` of a tensor and assembles them. */
export async function readRegion(store: ObjectStore, requestId: string, region: TileRegion, pieces: Piece[]): Promise<FloatTensor> {
  const parts = await Promise.all(pieces.map(async (p) => {
    const key = requestKeys.piece(requestId, p.from, p.outputIndex, p.to);
    const { tensor, header } = decodeTensor(await store.get(key), key);
    const r = header.region;
    if (!r || r.y0 !== p.region.y0 || r.y1 !== p.region.y1 || r.x0 !== p.region.x0 || r.x1 !== p.region.x1) {
      throw new TileFormatError(`piece covers ${JSON.stringify(r)}, expected ${JSON.stringify(p.region)}`, { key, requestId });
    }
    return { p, tensor };
  }));
  if (parts.length === 1 && relative(parts[0].p.region, region).y0 === 0 && parts[0].tensor.dims[2] === region.y1 - region.y0 && parts[0].tensor.dims[3] === region.x1 - region.x0) {
    return parts[0].tensor;
  }
  const [n, c] = parts[0].tensor.dims;
  const out: FloatTensor = { dims: [n, c, region.y1 - region.y0, region.x1 - region.x0], data: new Float32Array(n * c * (region.y1 - region.y0) * (region.x1 - region.x0)) };
  for (const { p, tensor } of parts) pasteRegion(out, tensor, relative(p.region, region));
  return out;
}

/** Cuts and writes the pieces of `tensor` (which covers `have`) that consumers will read. */
export async function writePieces(store: ObjectStore, requestId: string, tensor: FloatTensor, have: TileRegion, pieces: Piece[]): Promise<void> {
  await Promise.all(pieces.map(async (p) => {
    const part = cropRegion(tensor, relative(p.region, have));
    await store.put(requestKeys.piece(requestId, p.from, p.outputIndex, p.to), encodeTensor(part, p.region));
  }));
}

/**
 * One tile of one group: read the input regions straight from the producers' pieces, run the
 * group's sub-model (session cached per instance), write this tile's output pieces.
 */
export async function runWorkerTask(task: WorkerTask, deps: { store: ObjectStore; cache: ArtifactCache }): Promise<WorkerReport> {
  const t0 = performance.now();
  const store = new CountingStore(deps.store);
  const { plan, exchange } = await deps.cache.getPlan(task.planKey);
  const stage = plan.stages.find((s) => s.id === task.stage);
  if (!stage || stage.kind !== 'group') throw new ServeError(`plan ${task.planKey} has no group stage ${task.stage}`, { requestId: task.requestId });
  const tile = stage.tiles[task.tile];
  if (!tile) throw new ServeError(`group stage ${task.stage} has no tile ${task.tile}`, { requestId: task.requestId });
  const { session, cached } = await deps.cache.getSession(stage.subModel.sha256);
  const t1 = performance.now();

  const key = exchangeTileKey(stage.id, tile.index);
  const spatial: Record<string, FloatTensor> = {};
  await Promise.all(exchange.reads.get(key)!.map(async (r) => { spatial[r.tensor] = await readRegion(store, task.requestId, r.region, r.pieces); }));
  const whole: Record<string, FloatTensor> = {};
  await Promise.all(stage.inputs.filter((i) => !i.spatial).map(async (i) => {
    const p = exchange.producers.get(i.name)!;
    const k = requestKeys.whole(task.requestId, p.stage, p.outputIndex);
    whole[i.name] = decodeTensor(await store.get(k), k).tensor;
  }));
  const t2 = performance.now();

  const out = await runTile(session, stage, tile, spatial, whole);
  const t3 = performance.now();

  const writes = exchange.writes.get(key) ?? [];
  await Promise.all(tile.outputs.map((o) => writePieces(store, task.requestId, out[o.tensor], o.region, writes.filter((w) => w.tensor === o.tensor))));
  const t4 = performance.now();
  const c = store.counters;
  return {
    stage: stage.id, tile: tile.index,
    ms: { load: t1 - t0, read: t2 - t1, compute: t3 - t2, write: t4 - t3, total: t4 - t0 },
    sessionCached: cached, bytesRead: c.bytesRead, bytesWritten: c.bytesWritten, storeRequests: c.gets + c.puts + c.lists + c.deletes,
  };
}
