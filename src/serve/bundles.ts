import type { Chain, GroupStage, MasterStage, Plan, Stage } from '../plan/schema.ts';
import type { TileRegion } from '../tiling/geometry.ts';
import { ELEMENT_BYTES, type DType } from '../tensor/dtype.ts';

/**
 * The exchange between invocations, derived from the plan and its chains (pure: no I/O).
 *
 * Every producer writes at most one object per request and stage, a *bundle*: one segment per
 * reader, holding exactly the halo strips (pieces) and reduction partials that reader needs
 * from it. A reader fetches its segment with one ranged read; offsets follow from the plan and
 * the batch size alone. A worker keeps its own cells in memory from one group of its chain to
 * the next, so only regions that change owner move.
 *
 * Readers: a chain's worker (`c<chain>w<worker>`), the master, or the handler (model outputs).
 * Sources: the request input (written by the handler), a group tile, or a master stage.
 */
export type Item =
  | { kind: 'piece'; tensor: string; region: TileRegion; channels: number; dtype: DType }
  /** Partial of reduction `index` of reduce stage `stage` over the producer's own cell (float32). */
  | { kind: 'partial'; stage: number; index: number; channels: number };

/** `floatsPerImage` counts elements (whatever their dtype); `bytesPerImage` sizes the segment. */
export interface Segment { reader: string; items: Item[]; floatsPerImage: number; bytesPerImage: number }
export interface Bundle { source: string; segments: Segment[] }

/** Where one part of a read region comes from: this worker's own cell, or an item of a bundle. */
export type Part = { region: TileRegion } & ({ self: true } | { self: false; source: string; item: number });

export interface RegionRead { tensor: string; region: TileRegion; parts: Part[] }

export interface Producer { stage: number; outputIndex: number; kind: 'input' | 'master' | 'group' }

export interface Routes {
  chains: Chain[];
  chainOf: Map<number, Chain>;
  producers: Map<string, Producer>;
  bundles: Map<string, Bundle>;
  /** Per group tile (`stage:tile`): how each spatial input region is assembled. */
  reads: Map<string, RegionRead[]>;
  /** Group outputs the master needs whole, and model outputs the handler assembles. */
  masterReads: Map<string, RegionRead>;
  handlerReads: Map<string, RegionRead>;
  /** Reduction stages run inside a chain: by every worker, or by the leader (worker 0) only. */
  reduceRole: Map<number, 'all' | 'leader'>;
  /** Workers that run each in-chain reduction: the leader, and for `all` those with tiles after it. */
  runners: Map<number, Set<number>>;
  /** The worker of its chain that runs a group's tile, and the tile a worker runs (if any). */
  ownerOf(stage: number, tile: number): number;
  tileOf(stage: number, worker: number): number | undefined;
  /** Non-spatial tensors written whole to the store (read by other invocations). */
  wholeWrites: Set<string>;
}

export const workerReader = (chain: number, worker: number) => `c${chain}w${worker}`;
export const MASTER = 'master';
export const HANDLER = 'handler';
export const INPUT = 'input';
export const tileSource = (stage: number, tile: number) => `s${stage}t${tile}`;
export const masterSource = (stage: number) => `s${stage}m`;
export const tileKey = (stage: number, tile: number) => `${stage}:${tile}`;

export function intersect(a: TileRegion, b: TileRegion): TileRegion | undefined {
  const r = { y0: Math.max(a.y0, b.y0), y1: Math.min(a.y1, b.y1), x0: Math.max(a.x0, b.x0), x1: Math.min(a.x1, b.x1) };
  return r.y0 < r.y1 && r.x0 < r.x1 ? r : undefined;
}

const area = (r: TileRegion) => (r.y1 - r.y0) * (r.x1 - r.x0);
export const itemFloats = (it: Item) => (it.kind === 'piece' ? it.channels * area(it.region) : it.channels);
export const itemDtype = (it: Item): DType => (it.kind === 'piece' ? it.dtype : 'float32');
export const itemBytes = (it: Item) => itemFloats(it) * ELEMENT_BYTES[itemDtype(it)];

export function buildRoutes(plan: Plan, chains: Chain[] = plan.chains): Routes {
  const producers = new Map<string, Producer>([[plan.input.name, { stage: -1, outputIndex: 0, kind: 'input' }]]);
  const byId = new Map<number, Stage>(plan.stages.map((s) => [s.id, s]));
  for (const s of plan.stages) s.outputs.forEach((o, i) => producers.set(o.name, { stage: s.id, outputIndex: i, kind: s.kind }));
  const chainOf = new Map<number, Chain>();
  for (const c of chains) for (const id of c.stages) chainOf.set(id, c);
  const channels = new Map<string, number>([[plan.input.name, plan.input.shape[1]]]);
  for (const s of plan.stages) for (const o of s.outputs) if (o.shape) channels.set(o.name, o.shape[1]);
  const dtypes = new Map<string, DType>([[plan.input.name, plan.input.dtype ?? 'float32']]);
  for (const s of plan.stages) for (const o of s.outputs) dtypes.set(o.name, o.dtype ?? 'float32');

  const bundles = new Map<string, Bundle>();
  const addItem = (source: string, reader: string, item: Item): number => {
    let b = bundles.get(source);
    if (!b) { b = { source, segments: [] }; bundles.set(source, b); }
    let seg = b.segments.find((x) => x.reader === reader);
    if (!seg) { seg = { reader, items: [], floatsPerImage: 0, bytesPerImage: 0 }; b.segments.push(seg); }
    seg.items.push(item);
    seg.floatsPerImage += itemFloats(item);
    seg.bytesPerImage += itemBytes(item);
    return seg.items.length - 1;
  };
  const inChain = (stage: number, chain?: Chain) => !!chain && chainOf.get(stage) === chain;

  // Owners: across a change of grid inside a chain, each tile goes to the worker whose previous
  // cell overlaps it most, so what stays with its owner stays in memory.
  const owners = new Map<number, number[]>();
  for (const c of chains) {
    let prev: GroupStage | undefined;
    for (const id of c.stages) {
      const g = byId.get(id)!;
      if (g.kind !== 'group') continue;
      owners.set(id, prev ? inheritOwners(g, prev, owners.get(prev.id)!, c.workers) : g.tiles.map((t) => t.index));
      prev = g;
    }
  }
  const ownerOf = (stage: number, tile: number) => owners.get(stage)?.[tile] ?? tile;
  const tileOf = (stage: number, worker: number) => {
    const i = owners.get(stage)?.indexOf(worker) ?? -1;
    return i < 0 ? undefined : i;
  };

  /** Parts of `region` of `tensor` for `reader` (a worker of `chain` at `worker`, or master/handler). */
  const partsOf = (tensor: string, region: TileRegion, reader: string, chain?: Chain, worker?: number): Part[] => {
    const p = producers.get(tensor)!;
    const piece = (r: TileRegion): Item => ({ kind: 'piece', tensor, region: r, channels: channels.get(tensor)!, dtype: dtypes.get(tensor)! });
    if (p.kind !== 'group') {
      const source = p.kind === 'input' ? INPUT : masterSource(p.stage);
      return [{ region, self: false, source, item: addItem(source, reader, piece(region)) }];
    }
    const g = byId.get(p.stage) as GroupStage;
    const parts: Part[] = [];
    for (const t of g.tiles) {
      const r = intersect(t.outputs[p.outputIndex].region, region);
      if (!r) continue;
      if (inChain(g.id, chain) && ownerOf(g.id, t.index) === worker) parts.push({ region: r, self: true });
      else parts.push({ region: r, self: false, source: tileSource(g.id, t.index), item: addItem(tileSource(g.id, t.index), reader, piece(r)) });
    }
    return parts;
  };

  // Which workers run each in-chain reduction: everyone if a later group of the chain (or a
  // reduction everyone runs) reads its result, else the leader alone.
  const reduceRole = new Map<number, 'all' | 'leader'>();
  for (const c of chains) {
    const ids = c.stages;
    for (let k = ids.length - 1; k >= 0; k--) {
      const s = byId.get(ids[k])!;
      if (s.kind !== 'master') continue;
      const outs = new Set(s.outputs.map((o) => o.name));
      const usedByAll = ids.slice(k + 1).some((id) => {
        const t = byId.get(id)!;
        const reads = t.kind === 'group' ? t.inputs.map((i) => i.name) : t.inputs.map((i) => i.name);
        return (t.kind === 'group' || reduceRole.get(id) === 'all') && reads.some((x) => outs.has(x));
      });
      reduceRole.set(s.id, usedByAll ? 'all' : 'leader');
    }
  }
  const runners = new Map<number, Set<number>>();
  for (const c of chains) {
    c.stages.forEach((id, k) => {
      if (byId.get(id)!.kind !== 'master') return;
      const set = new Set<number>([0]);
      if (reduceRole.get(id) === 'all') {
        for (const later of c.stages.slice(k + 1)) for (const w of owners.get(later) ?? []) set.add(w);
      }
      runners.set(id, set);
    });
  }

  const reads = new Map<string, RegionRead[]>();
  const wholeWrites = new Set<string>();
  const masterNeeds = new Set<string>();
  for (const s of plan.stages) {
    const chain = chainOf.get(s.id);
    if (s.kind === 'group') {
      for (const t of s.tiles) {
        const w = ownerOf(s.id, t.index);
        reads.set(tileKey(s.id, t.index), t.inputs.map((i) => ({ tensor: i.tensor, region: i.region, parts: partsOf(i.tensor, i.region, workerReader(chain!.id, w), chain, w) })));
      }
      for (const i of s.inputs) if (!i.spatial && !inChain(producers.get(i.name)!.stage, chain)) wholeWrites.add(i.name);
      continue;
    }
    if (chain) {
      // Partials of each reduction go to every other worker that runs the stage.
      s.reduce!.reductions.forEach((r, index) => {
        const p = producers.get(r.input)!;
        const g = byId.get(p.stage) as GroupStage;
        for (const t of g.tiles) {
          for (const w of runners.get(s.id)!) {
            if (w === ownerOf(g.id, t.index)) continue;
            addItem(tileSource(g.id, t.index), workerReader(chain.id, w), { kind: 'partial', stage: s.id, index, channels: channels.get(r.input)! });
          }
        }
      });
      for (const i of s.inputs) {
        const p = producers.get(i.name)!;
        if (!inChain(p.stage, chain) && !s.reduce!.reductions.some((r) => r.input === i.name)) wholeWrites.add(i.name);
      }
      continue;
    }
    for (const i of s.inputs) masterNeeds.add(i.name);
  }
  // Outputs of in-chain reductions read outside their chain are written whole by the leader.
  for (const s of plan.stages) {
    if (s.kind !== 'master' || !chainOf.has(s.id)) continue;
    const chain = chainOf.get(s.id)!;
    for (const o of s.outputs) {
      const outside = plan.stages.some((t) => !inChain(t.id, chain) && t.inputs.some((i) => i.name === o.name)) || plan.outputs.some((x) => x.name === o.name);
      if (outside) wholeWrites.add(o.name);
    }
  }
  const whole = (t: string): TileRegion => {
    const p = producers.get(t)!;
    const shape = p.kind === 'input' ? plan.input.shape : byId.get(p.stage)!.outputs[p.outputIndex].shape!;
    return { y0: 0, y1: shape[2], x0: 0, x1: shape[3] };
  };
  const masterReads = new Map<string, RegionRead>();
  const handlerReads = new Map<string, RegionRead>();
  for (const t of masterNeeds) {
    const p = producers.get(t)!;
    if (p.kind === 'group') masterReads.set(t, { tensor: t, region: whole(t), parts: partsOf(t, whole(t), MASTER) });
    else if (p.kind === 'master' && chainOf.has(p.stage)) wholeWrites.add(t);
    else if (p.kind === 'input') masterReads.set(t, { tensor: t, region: whole(t), parts: partsOf(t, whole(t), MASTER) });
  }
  for (const o of plan.outputs) {
    const p = producers.get(o.name)!;
    if (p.kind === 'group' || p.kind === 'input') handlerReads.set(o.name, { tensor: o.name, region: whole(o.name), parts: partsOf(o.name, whole(o.name), HANDLER) });
    else wholeWrites.add(o.name);
  }
  return { chains, chainOf, producers, bundles, reads, masterReads, handlerReads, reduceRole, runners, wholeWrites, ownerOf, tileOf };
}

/**
 * Owners of `g`'s tiles given the owners of the chain's previous group `prev`: greedily by the
 * overlap of their cells (as fractions of the map, since resolutions differ), then the free
 * workers in order.
 */
function inheritOwners(g: GroupStage, prev: GroupStage, prevOwners: number[], workers: number): number[] {
  if (g.grid.rows === prev.grid.rows && g.grid.cols === prev.grid.cols) return prevOwners.slice();
  const frac = (s: GroupStage, t: number) => {
    const r = s.tiles[t].outputs[0].region;
    const [h, w] = s.outputs[0].shape.slice(2);
    return { y0: r.y0 / h, y1: r.y1 / h, x0: r.x0 / w, x1: r.x1 / w };
  };
  const pairs: { t: number; w: number; a: number }[] = [];
  for (const t of g.tiles) {
    const a = frac(g, t.index);
    for (const q of prev.tiles) {
      const b = frac(prev, q.index);
      const ov = Math.max(0, Math.min(a.y1, b.y1) - Math.max(a.y0, b.y0)) * Math.max(0, Math.min(a.x1, b.x1) - Math.max(a.x0, b.x0));
      if (ov > 0) pairs.push({ t: t.index, w: prevOwners[q.index], a: ov });
    }
  }
  pairs.sort((x, y) => y.a - x.a || x.t - y.t || x.w - y.w);
  const out = new Array<number>(g.tiles.length).fill(-1);
  const taken = new Set<number>();
  for (const p of pairs) if (out[p.t] < 0 && !taken.has(p.w)) { out[p.t] = p.w; taken.add(p.w); }
  let free = 0;
  for (let t = 0; t < out.length; t++) {
    if (out[t] >= 0) continue;
    while (taken.has(free)) free++;
    out[t] = free;
    taken.add(free);
  }
  if (Math.max(...out) >= workers) throw new RangeError(`group ${g.id} needs more workers than its chain has`);
  return out;
}

/** Byte range of `reader`'s segment in a bundle: a CRC-32, then its items' data in order. */
export function segmentRange(b: Bundle, reader: string, batch: number): { start: number; end: number; segment: Segment } {
  let start = 0;
  for (const s of b.segments) {
    const size = 4 + batch * s.bytesPerImage;
    if (s.reader === reader) return { start, end: start + size, segment: s };
    start += size;
  }
  throw new RangeError(`bundle ${b.source} has no segment for ${reader}`);
}

export const bundleBytes = (b: Bundle, batch: number) => b.segments.reduce((a, s) => a + 4 + batch * s.bytesPerImage, 0);

/** Stages in the order invocations run them: chains as units, master stages alone. */
export function schedule(plan: Plan, routes: Routes): ({ kind: 'chain'; chain: Chain } | { kind: 'master'; stage: MasterStage })[] {
  const out: ({ kind: 'chain'; chain: Chain } | { kind: 'master'; stage: MasterStage })[] = [];
  for (const s of plan.stages) {
    const c = routes.chainOf.get(s.id);
    if (c) { if (c.stages[0] === s.id) out.push({ kind: 'chain', chain: c }); }
    else out.push({ kind: 'master', stage: s as MasterStage });
  }
  return out;
}

/**
 * Bytes per request through the store: this design vs the paper's merge-and-resplit (workers
 * upload their output tiles, the master merges and re-cuts every consumer tile's input, halo
 * included, and workers download them). Input and outputs included in both.
 */
export function exchangeBytes(plan: Plan, batch = plan.input.shape[0], routes = buildRoutes(plan)): { direct: number; mergeResplit: number } {
  let direct = 0;
  // Every bundle segment is written once and read once.
  for (const b of routes.bundles.values()) direct += 2 * bundleBytes(b, batch);
  const n = batch / plan.input.shape[0];
  let mergeResplit = 0;
  for (const s of plan.stages) if (s.kind === 'group') mergeResplit += 2 * s.bytes.tileInputs * n + 2 * s.bytes.tileOutputs * n;
  return { direct, mergeResplit };
}

