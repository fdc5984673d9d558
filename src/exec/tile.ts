import type { GroupStage, Tile } from '../plan/schema.ts';
import type { Feed, ModelSession, Tensor } from '../runtime/ort.ts';

/** Runtime pads [top, left, bottom, right] as ONNX Pad's int64 [8] for an NCHW tensor. */
export function padsFeed(p: readonly number[]): Feed {
  return { dims: [8], data: BigInt64Array.from([0, 0, p[0], p[1], 0, 0, p[2], p[3]].map(BigInt)) };
}

/**
 * Runs one tile of a group. `spatial` holds the tile's input regions (already cropped to
 * `tile.inputs[i].region`), `whole` the group's untiled inputs (e.g. an SE scale vector).
 */
export async function runTile(
  session: ModelSession, group: GroupStage, tile: Tile,
  spatial: Record<string, Tensor>, whole: Record<string, Tensor>,
): Promise<Record<string, Tensor>> {
  const feeds: Record<string, Feed> = {};
  for (const i of group.inputs) {
    const t = i.spatial ? spatial[i.name] : whole[i.name];
    if (!t) throw new Error(`group ${group.id} tile ${tile.index}: missing input ${i.name}`);
    feeds[i.name] = t;
  }
  for (const rp of group.runtimePads) feeds[rp.name] = padsFeed(tile.pads[rp.name]);
  const out = await session.run(feeds);
  for (const o of tile.outputs) {
    const t = out[o.tensor];
    const h = o.region.y1 - o.region.y0;
    const w = o.region.x1 - o.region.x0;
    if (!t || t.dims[2] !== h || t.dims[3] !== w) {
      throw new Error(`group ${group.id} tile ${tile.index}: output ${o.tensor} is [${t?.dims.join(',')}], expected ${h}x${w}`);
    }
  }
  return out;
}
