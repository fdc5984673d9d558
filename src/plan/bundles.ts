import type { Chain, GroupStage, MasterStage, Plan, Region, Stage } from './schema.ts';
import { ELEMENT_BYTES, type DType } from '../tensor/dtype.ts';

/**
 * The exchange between invocations, derived from the plan and its chains (pure: no I/O).
 *
 * Every producer writes at most one object per request and stage, a *bundle*: the halo strips
 * and reduction partials its readers need from it, each byte stored once. Strips are
 * cut at every reader's region boundaries into blocks, and a block read by several readers (the
 * input's halo overlaps, a corner three neighbours need, a partial every runner combines) is
 * written once; blocks are ordered so that each reader's form few contiguous runs, and a reader
 * fetches each run with one ranged read. Offsets follow from the plan and the batch size alone.
 * A worker keeps its own cells in memory from one group of its chain to the next, so only
 * regions that change owner move.
 *
 * Readers: a chain's worker (`c<chain>w<worker>`), the master, or the handler (model outputs).
 * Sources: the request input (written by the handler), a group tile, or a master stage.
 */
export type Item =
  | { kind: 'strip'; tensor: string; region: Region; channels: number; dtype: DType }
  /** Partial of reduction `index` of reduce stage `stage` over the producer's own cell (float32). */
  | { kind: 'partial'; stage: number; index: number; channels: number };

/**
 * Consecutive items with the same readers, under one CRC-32. `floatsPerImage` counts elements
 * (whatever their dtype); `bytesPerImage` sizes the segment.
 */
export interface Segment { readers: string[]; items: Item[]; floatsPerImage: number; bytesPerImage: number }
export interface Bundle { source: string; segments: Segment[] }

/**
 * Where one part of a read region comes from: this worker's own cell, or an item of a bundle
 * (`item` indexes the reader's view of it, readerItems).
 */
export type Part = { region: Region } & ({ self: true } | { self: false; source: string; item: number });

export interface RegionRead { tensor: string; region: Region; parts: Part[] }

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

export function intersect(a: Region, b: Region): Region | undefined {
  const r = { y0: Math.max(a.y0, b.y0), y1: Math.min(a.y1, b.y1), x0: Math.max(a.x0, b.x0), x1: Math.min(a.x1, b.x1) };
  return r.y0 < r.y1 && r.x0 < r.x1 ? r : undefined;
}

const area = (r: Region) => (r.y1 - r.y0) * (r.x1 - r.x0);
export const itemFloats = (it: Item) => (it.kind === 'strip' ? it.channels * area(it.region) : it.channels);
export const itemDtype = (it: Item): DType => (it.kind === 'strip' ? it.dtype : 'float32');
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

  // What each reader wants from each source; bundles are laid out once every want is known.
  const wants = new Map<string, Want[]>();
  const addItem = (source: string, reader: string, item: Item): number => {
    let w = wants.get(source);
    if (!w) { w = []; wants.set(source, w); }
    w.push({ reader, item });
    return w.length - 1;
  };
  /** Region reads whose parts still name wants (not view items) until the layout resolves them. */
  const unresolved: { read: RegionRead; reader: string }[] = [];
  const regionRead = (read: RegionRead, reader: string): RegionRead => { unresolved.push({ read, reader }); return read; };
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
  const partsOf = (tensor: string, region: Region, reader: string, chain?: Chain, worker?: number): Part[] => {
    const p = producers.get(tensor)!;
    const strip = (r: Region): Item => ({ kind: 'strip', tensor, region: r, channels: channels.get(tensor)!, dtype: dtypes.get(tensor)! });
    if (p.kind !== 'group') {
      const source = p.kind === 'input' ? INPUT : masterSource(p.stage);
      return [{ region, self: false, source, item: addItem(source, reader, strip(region)) }];
    }
    const g = byId.get(p.stage) as GroupStage;
    const parts: Part[] = [];
    for (const t of g.tiles) {
      const r = intersect(t.outputs[p.outputIndex].region, region);
      if (!r) continue;
      if (inChain(g.id, chain) && ownerOf(g.id, t.index) === worker) parts.push({ region: r, self: true });
      else parts.push({ region: r, self: false, source: tileSource(g.id, t.index), item: addItem(tileSource(g.id, t.index), reader, strip(r)) });
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
        const reader = workerReader(chain!.id, w);
        reads.set(tileKey(s.id, t.index), t.inputs.map((i) => regionRead({ tensor: i.tensor, region: i.region, parts: partsOf(i.tensor, i.region, reader, chain, w) }, reader)));
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
  const whole = (t: string): Region => {
    const p = producers.get(t)!;
    const shape = p.kind === 'input' ? plan.input.shape : byId.get(p.stage)!.outputs[p.outputIndex].shape!;
    return { y0: 0, y1: shape[2], x0: 0, x1: shape[3] };
  };
  const masterReads = new Map<string, RegionRead>();
  const handlerReads = new Map<string, RegionRead>();
  for (const t of masterNeeds) {
    const p = producers.get(t)!;
    if (p.kind === 'group' || p.kind === 'input') masterReads.set(t, regionRead({ tensor: t, region: whole(t), parts: partsOf(t, whole(t), MASTER) }, MASTER));
    else if (p.kind === 'master' && chainOf.has(p.stage)) wholeWrites.add(t);
  }
  for (const o of plan.outputs) {
    const p = producers.get(o.name)!;
    if (p.kind === 'group' || p.kind === 'input') handlerReads.set(o.name, regionRead({ tensor: o.name, region: whole(o.name), parts: partsOf(o.name, whole(o.name), HANDLER) }, HANDLER));
    else wholeWrites.add(o.name);
  }
  const bundles = new Map<string, Bundle>();
  const layouts = new Map<string, Layout>();
  for (const [source, w] of wants) {
    const l = layoutBundle(source, w, source === INPUT);
    bundles.set(source, l.bundle);
    layouts.set(source, l);
  }
  for (const { read, reader } of unresolved) read.parts = read.parts.flatMap((p) => (p.self ? [p] : layouts.get(p.source)!.parts(reader, p.item)));
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

type Strip = Extract<Item, { kind: 'strip' }>;
interface Want { reader: string; item: Item }
interface Block { item: Item; readers: Set<string> }
interface Layout { bundle: Bundle; parts(reader: string, want: number): Part[] }

const contains = (outer: Region, inner: Region) => inner.y0 >= outer.y0 && inner.y1 <= outer.y1 && inner.x0 >= outer.x0 && inner.x1 <= outer.x1;
const cuts = (rs: Region[], lo: 'y0' | 'x0', hi: 'y1' | 'x1') => [...new Set(rs.flatMap((r) => [r[lo], r[hi]]))].sort((a, b) => a - b);

/** Ranged reads a block order costs: for each reader, its maximal runs of consecutive blocks. */
function runsOf(order: Block[]): number {
  let n = 0;
  order.forEach((b, i) => { for (const r of b.readers) if (i === 0 || !order[i - 1].readers.has(r)) n++; });
  return n;
}

/**
 * Moves single blocks to wherever they save the most runs, for a few passes. Cubic in the
 * blocks per pass, so only for bundles of up to 32 blocks (larger ones keep the snake order).
 */
function improveOrder(order: Block[]): Block[] {
  if (order.length > 32) return order;
  let best = runsOf(order);
  // One run per reader cannot be beaten.
  const floor = new Set(order.flatMap((b) => [...b.readers])).size;
  for (let pass = 0; pass < 4 && best > floor; pass++) {
    let moved = false;
    for (let i = 0; i < order.length; i++) {
      const rest = order.slice(0, i).concat(order.slice(i + 1));
      let at = -1;
      for (let j = 0; j <= rest.length; j++) {
        if (j === i) continue;
        const cost = runsOf([...rest.slice(0, j), order[i], ...rest.slice(j)]);
        if (cost < best) { best = cost; at = j; }
      }
      if (at >= 0) { order = [...rest.slice(0, at), order[i], ...rest.slice(at)]; moved = true; }
    }
    if (!moved) break;
  }
  return order;
}

/**
 * Lays out one producer's bundle from what its readers want. Each tensor's wanted regions are
 * cut at all their boundaries into blocks that every reader wants whole or not at all; each
 * partial is one block. Blocks go in snake order over their grid (row by row, alternating
 * direction: optimal for the input of a 2x2 grid), improved by moving single blocks, and
 * consecutive blocks with the same readers share a segment. Outside the input, the shared
 * layout is taken only where it gives every reader one run (its one ranged read); otherwise
 * each reader gets a segment of its own, duplicates included.
 */
function layoutBundle(source: string, wants: Want[], alwaysShare: boolean): Layout {
  const blocks: Block[] = [];
  const byTensor = new Map<string, Want[]>();
  const partials = new Map<string, Block>();
  for (const w of wants) {
    if (w.item.kind === 'strip') {
      if (!byTensor.has(w.item.tensor)) byTensor.set(w.item.tensor, []);
      byTensor.get(w.item.tensor)!.push(w);
    } else {
      const k = `${w.item.stage}:${w.item.index}`;
      if (!partials.has(k)) partials.set(k, { item: w.item, readers: new Set() });
      partials.get(k)!.readers.add(w.reader);
    }
  }
  const tensorBlocks = new Map<string, Block[]>();
  for (const [tensor, ws] of byTensor) {
    const regions = ws.map((w) => (w.item as Strip).region);
    const ys = cuts(regions, 'y0', 'y1');
    const xs = cuts(regions, 'x0', 'x1');
    const own: Block[] = [];
    let reverse = false;
    for (let i = 0; i + 1 < ys.length; i++) {
      const row: Block[] = [];
      for (let j = 0; j + 1 < xs.length; j++) {
        const cell = { y0: ys[i], y1: ys[i + 1], x0: xs[j], x1: xs[j + 1] };
        const readers = new Set(ws.filter((w, k) => contains(regions[k], cell)).map((w) => w.reader));
        if (readers.size) row.push({ item: { ...(ws[0].item as Strip), region: cell }, readers });
      }
      if (!row.length) continue;
      if (reverse) row.reverse();
      reverse = !reverse;
      own.push(...row);
    }
    tensorBlocks.set(tensor, own);
    blocks.push(...own);
  }
  blocks.push(...partials.values());
  const order = improveOrder(blocks);
  const readers = [...new Set(wants.map((w) => w.reader))];
  if (alwaysShare || runsOf(order) === readers.length) {
    const segments: Segment[] = [];
    let last = '';
    for (const b of order) {
      const key = [...b.readers].sort().join(',');
      if (key !== last || !segments.length) segments.push({ readers: [...b.readers].sort(), items: [], floatsPerImage: 0, bytesPerImage: 0 });
      last = key;
      const seg = segments[segments.length - 1];
      seg.items.push(b.item);
      seg.floatsPerImage += itemFloats(b.item);
      seg.bytesPerImage += itemBytes(b.item);
    }
    // A block's index in each reader's view: the items of the segments it reads, in order.
    const views = new Map<string, Map<Block, number>>(readers.map((r) => [r, new Map()]));
    const seen = new Map<string, number>(readers.map((r) => [r, 0]));
    let k = 0;
    for (const seg of segments) {
      const segBlocks = order.slice(k, k + seg.items.length);
      k += seg.items.length;
      for (const r of seg.readers) {
        segBlocks.forEach((b, i) => views.get(r)!.set(b, seen.get(r)! + i));
        seen.set(r, seen.get(r)! + seg.items.length);
      }
    }
    return {
      bundle: { source, segments },
      parts(reader, want) {
        const w = wants[want];
        const view = views.get(reader)!;
        if (w.item.kind === 'partial') {
          const b = partials.get(`${w.item.stage}:${w.item.index}`)!;
          return [{ region: { y0: 0, y1: 0, x0: 0, x1: 0 }, self: false, source, item: view.get(b)! }];
        }
        const region = w.item.region;
        return tensorBlocks.get(w.item.tensor)!.filter((b) => b.readers.has(reader) && contains(region, (b.item as Strip).region))
          .map((b) => ({ region: (b.item as Strip).region, self: false as const, source, item: view.get(b)! }));
      },
    };
  }
  // One segment per reader, as each wants it.
  const segments: Segment[] = readers.map((r) => ({ readers: [r], items: [], floatsPerImage: 0, bytesPerImage: 0 }));
  const index = wants.map((w) => {
    const seg = segments[readers.indexOf(w.reader)];
    seg.items.push(w.item);
    seg.floatsPerImage += itemFloats(w.item);
    seg.bytesPerImage += itemBytes(w.item);
    return seg.items.length - 1;
  });
  return {
    bundle: { source, segments },
    parts: (reader, want) => [{ region: wants[want].item.kind === 'strip' ? (wants[want].item as Strip).region : { y0: 0, y1: 0, x0: 0, x1: 0 }, self: false, source, item: index[want] }],
  };
}

const segmentBytes = (s: Segment, batch: number) => 4 + batch * s.bytesPerImage;

/**
 * The ranged reads `reader` makes of a bundle: its maximal runs of consecutive segments, each
 * a byte range holding a CRC-32 and the items' data per segment.
 */
export function readerRuns(b: Bundle, reader: string, batch: number): { start: number; end: number; segments: Segment[] }[] {
  const runs: { start: number; end: number; segments: Segment[] }[] = [];
  let start = 0;
  for (const s of b.segments) {
    const end = start + segmentBytes(s, batch);
    if (s.readers.includes(reader)) {
      const last = runs[runs.length - 1];
      if (last && last.end === start) { last.end = end; last.segments.push(s); } else runs.push({ start, end, segments: [s] });
    }
    start = end;
  }
  if (!runs.length) throw new RangeError(`bundle ${b.source} has no segment for ${reader}`);
  return runs;
}

const views = new WeakMap<Bundle, Map<string, Item[]>>();
/** The items `reader` reads from a bundle, in order: what Part.item indexes. */
export function readerItems(b: Bundle, reader: string): Item[] {
  let m = views.get(b);
  if (!m) { m = new Map(); views.set(b, m); }
  let v = m.get(reader);
  if (!v) {
    v = b.segments.filter((s) => s.readers.includes(reader)).flatMap((s) => s.items);
    if (!v.length) throw new RangeError(`bundle ${b.source} has no segment for ${reader}`);
    m.set(reader, v);
  }
  return v;
}

/** Bytes `reader` fetches from a bundle (its runs). */
export const readerBytes = (b: Bundle, reader: string, batch: number) => readerRuns(b, reader, batch).reduce((a, r) => a + r.end - r.start, 0);
/** Bytes of the bundle object, each segment once. */
export const bundleBytes = (b: Bundle, batch: number) => b.segments.reduce((a, s) => a + segmentBytes(s, batch), 0);
/** Bytes all readers fetch from a bundle: each segment once per reader. */
export const bundleReadBytes = (b: Bundle, batch: number) => b.segments.reduce((a, s) => a + s.readers.length * segmentBytes(s, batch), 0);
/** Ranged reads of a bundle by all its readers (one per run). */
export function bundleReads(b: Bundle): number {
  let n = 0;
  b.segments.forEach((s, i) => { for (const r of s.readers) if (i === 0 || !b.segments[i - 1].readers.includes(r)) n++; });
  return n;
}

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
  // Every bundle is written once, and each of its segments read once by each of its readers.
  for (const b of routes.bundles.values()) direct += bundleBytes(b, batch) + bundleReadBytes(b, batch);
  const n = batch / plan.input.shape[0];
  let mergeResplit = 0;
  for (const s of plan.stages) if (s.kind === 'group') mergeResplit += 2 * s.bytes.tileInputs * n + 2 * s.bytes.tileOutputs * n;
  return { direct, mergeResplit };
}

