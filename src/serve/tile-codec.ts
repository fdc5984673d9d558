import { crc32 } from 'node:zlib';
import { z } from 'zod';
import { regionSchema, type Region } from '../plan/schema.ts';
import { bytesOf, dtypeOf, dtypeSchema, ELEMENT_BYTES, fromBytes, makeTensor, type DType, type Tensor, type TensorData } from '../tensor/dtype.ts';
import { TileFormatError } from './errors.ts';

/**
 * Tensor objects in the store: "FCT1", u32 header length, JSON header, then the raw element
 * data (little-endian; float16/bfloat16 as bits, bool one byte each). The header says what the
 * bytes are (dtype, dims, and for tiles the region of the global map they cover) and carries a
 * CRC-32 of the data.
 */
const MAGIC = Buffer.from('FCT1');

export const tileHeaderSchema = z.object({
  dtype: dtypeSchema,
  dims: z.array(z.number().int().nonnegative()),
  region: regionSchema.optional(),
  crc32: z.number().int().nonnegative(),
}).strict();
export type TileHeader = z.infer<typeof tileHeaderSchema>;

export function encodeTensor(t: Tensor, region?: TileHeader['region']): Buffer {
  const data = bytesOf(t.data);
  const header: TileHeader = { dtype: dtypeOf(t), dims: t.dims, ...(region ? { region } : {}), crc32: crc32(data) };
  let json = Buffer.from(JSON.stringify(header));
  // Pad the header with spaces so the data starts 8-byte aligned (zero-copy views, int64 included).
  const pad = (8 - ((8 + json.length) % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(json.length);
  return Buffer.concat([MAGIC, len, json, data]);
}

export function decodeTensor(buf: Buffer, key: string): { tensor: Tensor; header: TileHeader } {
  if (buf.length < 8 || !buf.subarray(0, 4).equals(MAGIC)) throw new TileFormatError('not a tensor object (bad magic)', { key });
  const hlen = buf.readUInt32LE(4);
  if (8 + hlen > buf.length) throw new TileFormatError('truncated header', { key });
  let header: TileHeader;
  try {
    header = tileHeaderSchema.parse(JSON.parse(buf.subarray(8, 8 + hlen).toString('utf8')));
  } catch (cause) {
    throw new TileFormatError(`invalid header: ${(cause as Error).message}`, { key, cause });
  }
  const data = buf.subarray(8 + hlen);
  const n = header.dims.reduce((a, b) => a * b, 1);
  const size = ELEMENT_BYTES[header.dtype];
  if (data.length !== n * size) throw new TileFormatError(`data is ${data.length} bytes, ${header.dtype} dims [${header.dims}] need ${n * size}`, { key });
  if (crc32(data) !== header.crc32) throw new TileFormatError('checksum mismatch (corrupt or partial object)', { key });
  return { tensor: makeTensor(header.dtype, header.dims, fromBytes(header.dtype, data, n)), header };
}

/** A bundle item: data as it is, or `region` of `src` (a map covering `at`), copied straight into the body. */
export type BundleItem = TensorData | { src: Tensor; at: Region; region: Region };

function itemSize(it: BundleItem): number {
  if (ArrayBuffer.isView(it)) return it.byteLength;
  const [n, c] = it.src.dims;
  return n * c * (it.region.y1 - it.region.y0) * (it.region.x1 - it.region.x0) * ELEMENT_BYTES[dtypeOf(it.src)];
}

/**
 * A bundle: for each segment, a CRC-32 (LE) of its data, then its items' raw data in order,
 * with no padding. No header: offsets and dtypes follow from the plan and the batch size (see
 * bundles.ts). Regions are copied row by row into the one output buffer (no crop, no concat).
 */
export function encodeBundle(segments: { items: BundleItem[] }[]): Buffer {
  const total = segments.reduce((a, s) => a + 4 + s.items.reduce((b, it) => b + itemSize(it), 0), 0);
  const out = Buffer.allocUnsafe(total);
  let off = 0;
  for (const s of segments) {
    const crcAt = off;
    off += 4;
    const start = off;
    for (const it of s.items) {
      if (ArrayBuffer.isView(it)) { out.set(bytesOf(it), off); off += it.byteLength; continue; }
      const { src, at, region: r } = it;
      const e = ELEMENT_BYTES[dtypeOf(src)];
      const [n, c, sh, sw] = src.dims;
      const rh = r.y1 - r.y0;
      const rw = r.x1 - r.x0;
      if (r.y0 < at.y0 || r.x0 < at.x0 || r.y1 > at.y0 + sh || r.x1 > at.x0 + sw || rh <= 0 || rw <= 0) {
        throw new RangeError(`region [${r.y0},${r.y1})x[${r.x0},${r.x1}) is not inside the map it is cut from`);
      }
      const bytes = bytesOf(src.data);
      const rowBytes = rw * e;
      for (let p = 0; p < n * c; p++) {
        const first = (p * sh * sw + (r.y0 - at.y0) * sw + (r.x0 - at.x0)) * e;
        // Full-width rows are one run per plane.
        if (rw === sw) { out.set(bytes.subarray(first, first + rh * rowBytes), off); off += rh * rowBytes; continue; }
        for (let y = 0; y < rh; y++) {
          const from = first + y * sw * e;
          out.set(bytes.subarray(from, from + rowBytes), off);
          off += rowBytes;
        }
      }
    }
    out.writeUInt32LE(crc32(out.subarray(start, off)), crcAt);
  }
  return out;
}

/** One item of a segment: its element count, and its dtype (float32 when a bare count is given). */
export type SegmentItem = number | { dtype: DType; count: number };

/**
 * Splits one segment read from a bundle into its items, checking the CRC. An item that does not
 * start aligned for its element size (after 1- or 2-byte items) is copied.
 */
export function decodeSegment(buf: Buffer, floats: number[], key: string): Float32Array[];
export function decodeSegment(buf: Buffer, items: SegmentItem[], key: string): TensorData[];
export function decodeSegment(buf: Buffer, items: SegmentItem[], key: string): TensorData[] {
  const spec = items.map((it) => (typeof it === 'number' ? { dtype: 'float32' as DType, count: it } : it));
  const total = spec.reduce((a, s) => a + s.count * ELEMENT_BYTES[s.dtype], 0);
  if (buf.length !== 4 + total) throw new TileFormatError(`segment is ${buf.length} bytes, expected ${4 + total}`, { key });
  const data = buf.subarray(4);
  if (crc32(data) !== buf.readUInt32LE(0)) throw new TileFormatError('segment checksum mismatch (corrupt or partial object)', { key });
  const out: TensorData[] = [];
  let off = 0;
  for (const s of spec) {
    const bytes = s.count * ELEMENT_BYTES[s.dtype];
    out.push(fromBytes(s.dtype, data.subarray(off, off + bytes), s.count));
    off += bytes;
  }
  return out;
}
