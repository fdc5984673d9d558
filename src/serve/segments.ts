/**
 * Bundles on the wire: how a producer's bundle is built from the cells it holds, and how a reader
 * takes its segments of other invocations' bundles back out. Workers, the master and the handler
 * all read and write bundles, so this lives apart from any one of them.
 */
import type { Tensor } from '../runtime/ort.ts';
import { dtypeOf, makeTensor, zerosOf, type TensorData } from '../tensor/dtype.ts';
import { copyRegion, cropRegion } from '../tensor/nchw.ts';
import type { Region } from '../plan/schema.ts';
import type { Exchange } from '../exchange/exchange.ts';
import { itemDtype, itemFloats, readerItems, readerRuns, type Bundle, type Item, type Part, type RegionRead, type Routes } from '../plan/bundles.ts';
import { requestKeys } from './keys.ts';
import { decodeSegment, encodeBundle } from './tile-codec.ts';
import { TileFormatError } from './errors.ts';

const relative = (r: Region, origin: Region): Region => ({ y0: r.y0 - origin.y0, y1: r.y1 - origin.y0, x0: r.x0 - origin.x0, x1: r.x1 - origin.x0 });
const sameRegion = (a: Region, b: Region) => a.y0 === b.y0 && a.y1 === b.y1 && a.x0 === b.x0 && a.x1 === b.x1;

/**
 * Reads one reader's segments of other invocations' bundles, once each, waiting for those
 * still being written. Shared by workers, the master and the handler.
 */
export class SegmentReader {
  private segments = new Map<string, Promise<TensorData[]>>();
  constructor(
    private readonly exchange: Exchange, private readonly routes: Routes, private readonly reader: string,
    private readonly ctx: { requestId: string; batch: number; deadline: number; describe?: (source: string) => string },
  ) {}

  items(source: string): Promise<TensorData[]> {
    let p = this.segments.get(source);
    if (!p) {
      const bundle = this.routes.bundles.get(source)!;
      const runs = readerRuns(bundle, this.reader, this.ctx.batch);
      const key = requestKeys.bundle(this.ctx.requestId, source);
      const spec = (it: Item) => ({ dtype: itemDtype(it), count: this.ctx.batch * itemFloats(it) });
      // One ranged read per run of this reader's segments, all at once; each segment checked.
      const read = async () => (await Promise.all(runs.map(async ({ start, end, segments }) => {
        const buf = await this.exchange.wait(key, { deadline: this.ctx.deadline, range: { start, end }, abortKey: requestKeys.abort(this.ctx.requestId), what: this.ctx.describe?.(source) ?? source });
        if (buf.length !== end - start) throw new TileFormatError(`run is ${buf.length} bytes, expected ${end - start}`, { key });
        let off = 0;
        return segments.flatMap((s) => {
          const size = 4 + this.ctx.batch * s.bytesPerImage;
          const items = decodeSegment(buf.subarray(off, off + size), s.items.map(spec), key);
          off += size;
          return items;
        });
      }))).flat();
      // A segment that fails its CRC-32 or length was damaged on the way (the store's own checks
      // cannot see into a ranged read): read it once more, and if that fails too, fail loudly.
      p = read().catch(async (first: unknown) => {
        if (!(first instanceof TileFormatError)) throw first;
        try {
          return await read();
        } catch (again) {
          if (!(again instanceof TileFormatError)) throw again;
          throw new TileFormatError(`${this.reader}'s segment failed its check twice (first: ${first.message}; again: ${again.message})`, { key, requestId: this.ctx.requestId, cause: again });
        }
      });
      this.segments.set(source, p);
    }
    return p;
  }

  /** Assembles a region from its parts; `self` parts come from `own` (a cell this reader holds). */
  async region(read: RegionRead, channels: number, own?: (tensor: string) => { t: Tensor; region: Region }): Promise<Tensor> {
    const b = this.ctx.batch;
    const h = read.region.y1 - read.region.y0;
    const w = read.region.x1 - read.region.x0;
    const partTensor = async (p: Part): Promise<{ t: Tensor; at: Region }> => {
      if (p.self) return { t: own!(read.tensor).t, at: own!(read.tensor).region };
      const data = (await this.items(p.source))[p.item];
      const item = readerItems(this.routes.bundles.get(p.source)!, this.reader)[p.item];
      return { t: makeTensor(itemDtype(item), [b, channels, p.region.y1 - p.region.y0, p.region.x1 - p.region.x0], data), at: p.region };
    };
    if (read.parts.length === 1 && sameRegion(read.parts[0].region, read.region)) {
      const { t, at } = await partTensor(read.parts[0]);
      return sameRegion(at, read.region) ? t : cropRegion(t, relative(read.region, at));
    }
    const parts = await Promise.all(read.parts.map(partTensor));
    const out = zerosOf(dtypeOf(parts[0].t), [b, channels, h, w]);
    parts.forEach(({ t, at }, i) => copyRegion(out, read.region, t, at, read.parts[i].region));
    return out;
  }
}

/** Builds a producer's bundle from the tensors it holds and the partials it computed. */
export function bundleBody(bundle: Bundle, cellOf: (tensor: string) => { t: Tensor; region: Region }, partial?: (stage: number, index: number) => Float32Array): Buffer {
  return encodeBundle(bundle.segments.map((s) => ({
    items: s.items.map((it) => {
      if (it.kind === 'partial') return partial!(it.stage, it.index);
      const cell = cellOf(it.tensor);
      return sameRegion(it.region, cell.region) ? cell.t.data : { src: cell.t, at: cell.region, region: it.region };
    }),
  })));
}
