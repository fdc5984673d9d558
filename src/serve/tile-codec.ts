import { crc32 } from 'node:zlib';
import { z } from 'zod';
import type { FloatTensor } from '../runtime/ort.ts';
import { tileRegionSchema } from '../plan/schema.ts';
import { TileFormatError } from './errors.ts';

/**
 * Tensor objects in the store: "FCT1", u32 header length, JSON header, then float32 data
 * (little-endian). The header says what the bytes are (dtype, dims, and for tiles the region
 * of the global map they cover) and carries a CRC-32 of the data.
 */
const MAGIC = Buffer.from('FCT1');

export const tileHeaderSchema = z.object({
  dtype: z.literal('float32'),
  dims: z.array(z.number().int().nonnegative()),
  region: tileRegionSchema.optional(),
  crc32: z.number().int().nonnegative(),
}).strict();
export type TileHeader = z.infer<typeof tileHeaderSchema>;

export function encodeTensor(t: FloatTensor, region?: TileHeader['region']): Buffer {
  const data = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const header: TileHeader = { dtype: 'float32', dims: t.dims, ...(region ? { region } : {}), crc32: crc32(data) };
  let json = Buffer.from(JSON.stringify(header));
  // Pad the header with spaces so the data starts 4-byte aligned (zero-copy Float32Array views).
  const pad = (4 - ((8 + json.length) % 4)) % 4;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(json.length);
  return Buffer.concat([MAGIC, len, json, data]);
}

export function decodeTensor(buf: Buffer, key: string): { tensor: FloatTensor; header: TileHeader } {
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
  if (data.length !== n * 4) throw new TileFormatError(`data is ${data.length} bytes, dims [${header.dims}] need ${n * 4}`, { key });
  if (crc32(data) !== header.crc32) throw new TileFormatError('checksum mismatch (corrupt or partial object)', { key });
  const aligned = data.byteOffset % 4 === 0 ? data : Buffer.from(data);
  return { tensor: { dims: header.dims, data: new Float32Array(aligned.buffer, aligned.byteOffset, n) }, header };
}

/**
 * A bundle: for each reader's segment, a CRC-32 (LE) of its data, then its items' float32 data
 * in order. No header: offsets follow from the plan and the batch size (see bundles.ts).
 */
export function encodeBundle(segments: { items: Float32Array[] }[]): Buffer {
  const parts: Buffer[] = [];
  for (const s of segments) {
    const data = Buffer.concat(s.items.map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength)));
    const crc = Buffer.alloc(4);
    crc.writeUInt32LE(crc32(data));
    parts.push(crc, data);
  }
  return Buffer.concat(parts);
}

/** Splits one segment read from a bundle into its items (float counts given), checking the CRC. */
export function decodeSegment(buf: Buffer, floats: number[], key: string): Float32Array[] {
  const total = floats.reduce((a, b) => a + b, 0);
  if (buf.length !== 4 + 4 * total) throw new TileFormatError(`segment is ${buf.length} bytes, expected ${4 + 4 * total}`, { key });
  const data = buf.subarray(4);
  if (crc32(data) !== buf.readUInt32LE(0)) throw new TileFormatError('segment checksum mismatch (corrupt or partial object)', { key });
  const aligned = data.byteOffset % 4 === 0 ? data : Buffer.from(data);
  const all = new Float32Array(aligned.buffer, aligned.byteOffset, total);
  const out: Float32Array[] = [];
  let off = 0;
  for (const n of floats) { out.push(all.subarray(off, off + n)); off += n; }
  return out;
}
