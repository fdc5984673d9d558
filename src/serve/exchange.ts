import type { GroupStage, Plan } from '../plan/schema.ts';
import type { TileRegion } from '../tiling/geometry.ts';
import type { PieceSink, PieceSource } from './keys.ts';

/** One object of the tile exchange: part of a producer's output map, cut for one consumer. */
export interface Piece { tensor: string; region: TileRegion; from: PieceSource; outputIndex: number; to: PieceSink }

export interface TileReads { tensor: string; region: TileRegion; pieces: Piece[] }

/** Where a tensor comes from: the request input and master outputs are held by the master (tile undefined). */
export interface Producer { stage: number; outputIndex: number; kind: 'input' | 'master' | 'group' }

/**
 * The exchange between stages, derived from the plan: which producer tiles overlap each
 * consumer tile's input region. Producers write exactly those intersections as separate
 * objects, so a consumer reads only the bytes it needs, straight from its producers: the
 * master moves no tensor bytes between two groups.
 */
export interface Exchange {
  producers: Map<string, Producer>;
  /** Per group tile (`stage:tile`): the pieces to read for each spatial input. */
  reads: Map<string, TileReads[]>;
  /** Per group tile: the pieces it writes. */
  writes: Map<string, Piece[]>;
  /** Pieces the master writes from tensors it holds (tiled for consumer tiles). */
  masterWrites: Map<string, Piece[]>;
  /** Group outputs the master needs whole (master-stage inputs, model outputs): one piece per producer tile. */
  masterReads: Map<string, Piece[]>;
}

const tileKey = (stage: number, tile: number) => `${stage}:${tile}`;

function intersect(a: TileRegion, b: TileRegion): TileRegion | undefined {
  const r = { y0: Math.max(a.y0, b.y0), y1: Math.min(a.y1, b.y1), x0: Math.max(a.x0, b.x0), x1: Math.min(a.x1, b.x1) };
  return r.y0 < r.y1 && r.x0 < r.x1 ? r : undefined;
}

export function buildExchange(plan: Plan): Exchange {
  const producers = new Map<string, Producer>([[plan.input.name, { stage: -1, outputIndex: 0, kind: 'input' }]]);
  const groups = new Map<number, GroupStage>();
  for (const s of plan.stages) {
    if (s.kind === 'group') groups.set(s.id, s);
    s.outputs.forEach((o, i) => producers.set(o.name, { stage: s.id, outputIndex: i, kind: s.kind }));
  }
  const reads = new Map<string, TileReads[]>();
  const writes = new Map<string, Piece[]>();
  const masterWrites = new Map<string, Piece[]>();
  const masterReads = new Map<string, Piece[]>();
  const push = <T>(m: Map<string, T[]>, k: string, v: T) => { if (!m.has(k)) m.set(k, []); m.get(k)!.push(v); };

  const cellPieces = (tensor: string, p: Producer, region: TileRegion, to: PieceSink): Piece[] => {
    if (p.kind !== 'group') return [{ tensor, region, from: { stage: p.stage }, outputIndex: p.outputIndex, to }];
    const out: Piece[] = [];
    for (const t of groups.get(p.stage)!.tiles) {
      const cell = t.outputs[p.outputIndex].region;
      const r = intersect(cell, region);
      if (r) out.push({ tensor, region: r, from: { stage: p.stage, tile: t.index }, outputIndex: p.outputIndex, to });
    }
    return out;
  };
  const record = (piece: Piece) => {
    if (piece.from.tile === undefined) push(masterWrites, piece.tensor, piece);
    else push(writes, tileKey(piece.from.stage, piece.from.tile), piece);
  };

  for (const s of plan.stages) {
    if (s.kind !== 'group') continue;
    for (const t of s.tiles) {
      const tr: TileReads[] = [];
      for (const i of t.inputs) {
        const p = producers.get(i.tensor)!;
        const pieces = cellPieces(i.tensor, p, i.region, { stage: s.id, tile: t.index });
        pieces.forEach(record);
        tr.push({ tensor: i.tensor, region: i.region, pieces });
      }
      reads.set(tileKey(s.id, t.index), tr);
    }
  }
  // Group outputs the master consumes: every cell, whole.
  const masterNeeds = new Set<string>(plan.outputs.map((o) => o.name));
  for (const s of plan.stages) if (s.kind === 'master') for (const i of s.inputs) masterNeeds.add(i.name);
  for (const tensor of masterNeeds) {
    const p = producers.get(tensor);
    if (!p || p.kind !== 'group') continue;
    const g = groups.get(p.stage)!;
    const shape = g.outputs[p.outputIndex].shape;
    const pieces = cellPieces(tensor, p, { y0: 0, y1: shape[2], x0: 0, x1: shape[3] }, { stage: -1 });
    pieces.forEach(record);
    masterReads.set(tensor, pieces);
  }
  return { producers, reads, writes, masterWrites, masterReads };
}

export const exchangeTileKey = tileKey;

/** Bytes per request through the store: ours vs the paper's merge-and-resplit exchange. */
export function exchangeBytes(plan: Plan, batch = plan.input.shape[0]): { direct: number; mergeResplit: number } {
  const ex = buildExchange(plan);
  const area = (r: TileRegion) => (r.y1 - r.y0) * (r.x1 - r.x0);
  const chan = new Map<string, number>();
  for (const s of plan.stages) for (const o of s.outputs) if (o.shape) chan.set(o.name, o.shape[1]);
  chan.set(plan.input.name, plan.input.shape[1]);
  const bytes = (p: Piece) => area(p.region) * batch * (chan.get(p.tensor) ?? 0) * 4;
  let direct = 0;
  // Every piece is written once and read once.
  for (const list of [...ex.writes.values(), ...ex.masterWrites.values()]) for (const p of list) direct += 2 * bytes(p);
  // Merge-and-resplit: workers upload their output tile, the master downloads all of them,
  // merges, cuts every consumer tile's input (halo included), uploads, and workers download.
  let mergeResplit = 0;
  for (const s of plan.stages) {
    if (s.kind !== 'group') continue;
    const n = batch / plan.input.shape[0];
    mergeResplit += 2 * s.bytes.tileInputs * n + 2 * s.bytes.tileOutputs * n;
  }
  return { direct, mergeResplit };
}
