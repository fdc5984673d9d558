import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeSegment, decodeTensor, encodeBundle, encodeTensor } from '../../src/serve/tile-codec.ts';
import { TileFormatError } from '../../src/serve/errors.ts';
import { DTYPES, dtypeOf, ELEMENT_BYTES, makeTensor, type DType, type Tensor, type TensorData } from '../../src/tensor/dtype.ts';
import { sample } from '../helpers/dtypes.ts';

/** Bit-for-bit equality (NaN payloads and -0 included). */
function sameBits(a: TensorData, b: TensorData): boolean {
  const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

describe('tile codec: every boundary dtype', () => {
  for (const dtype of DTYPES) {
    it(`${dtype}: tensor objects round-trip bit for bit, with their dtype and region`, () => {
      const t = makeTensor(dtype, [2, 3, 5, 7], sample(dtype, 2 * 3 * 5 * 7, 7));
      const buf = encodeTensor(t, { y0: 1, y1: 6, x0: 2, x1: 9 });
      // Data starts 8-byte aligned whatever the header length: int64 views need no copy.
      assert.equal((8 + buf.readUInt32LE(4)) % 8, 0);
      assert.equal(buf.length - 8 - buf.readUInt32LE(4), t.data.length * ELEMENT_BYTES[dtype]);
      const { tensor, header } = decodeTensor(buf, 'k');
      assert.equal(dtypeOf(tensor), dtype);
      assert.equal(header.dtype, dtype);
      assert.deepEqual(tensor.dims, t.dims);
      assert.equal(tensor.data.constructor, t.data.constructor);
      assert.ok(sameBits(tensor.data, t.data));
      assert.deepEqual(header.region, { y0: 1, y1: 6, x0: 2, x1: 9 });
    });
  }

  it('float32 tensors without a dtype are written as float32 (older callers)', () => {
    const { tensor, header } = decodeTensor(encodeTensor({ dims: [1, 1, 1, 2], data: Float32Array.from([1.5, -2]) }), 'k');
    assert.equal(header.dtype, 'float32');
    assert.deepEqual(Array.from(tensor.data as Float32Array), [1.5, -2]);
  });

  it('rejects a payload that does not fit its dtype, corruption, and unknown dtypes, naming the key', () => {
    const buf = encodeTensor(makeTensor('int64', [1, 1, 2, 2], sample('int64', 4, 1)));
    assert.throws(() => decodeTensor(buf.subarray(0, buf.length - 8), 'requests/r/w-s1-0'), (e: Error) => e instanceof TileFormatError && /int64 dims \[1,1,2,2\] need 32/.test(e.message) && /w-s1-0/.test(e.message));
    const bad = Buffer.from(buf);
    bad[bad.length - 1] ^= 1;
    assert.throws(() => decodeTensor(bad, 'k'), /checksum/);
    const hlen = buf.readUInt32LE(4);
    const header = buf.subarray(8, 8 + hlen).toString().replace('"int64"', '"int16"');
    const forged = Buffer.concat([buf.subarray(0, 8), Buffer.from(header), buf.subarray(8 + hlen)]);
    assert.throws(() => decodeTensor(forged, 'k'), (e: Error) => e instanceof TileFormatError && /invalid header/.test(e.message) && /dtype/.test(e.message));
  });

  it('bundle segments carry items of mixed dtypes, unaligned ones included', () => {
    // bool (3 bytes) then float16 (odd offset), int64 (unaligned), float32 partials...
    const specs: { dtype: DType; count: number }[] = [
      { dtype: 'bool', count: 3 }, { dtype: 'float16', count: 5 }, { dtype: 'int64', count: 2 }, { dtype: 'float32', count: 4 },
      { dtype: 'int8', count: 1 }, { dtype: 'int32', count: 3 }, { dtype: 'bfloat16', count: 2 }, { dtype: 'uint8', count: 6 },
    ];
    const items = specs.map((s, i) => sample(s.dtype, s.count, 100 + i));
    const other = [sample('float32', 2, 9)];
    const buf = encodeBundle([{ items }, { items: other }]);
    const first = 4 + specs.reduce((a, s) => a + s.count * ELEMENT_BYTES[s.dtype], 0);
    const got = decodeSegment(buf.subarray(0, first), specs, 'k');
    assert.equal(got.length, items.length);
    got.forEach((g, i) => {
      assert.equal(g.constructor, items[i].constructor, `item ${i}`);
      assert.ok(sameBits(g, items[i]), `item ${i} (${specs[i].dtype})`);
    });
    assert.ok(sameBits(decodeSegment(buf.subarray(first), [2], 'k')[0], other[0]));
    assert.throws(() => decodeSegment(buf.subarray(0, first), specs.slice(1), 'k'), /bytes/);
    const bad = Buffer.from(buf);
    bad[6] ^= 1;
    assert.throws(() => decodeSegment(bad.subarray(0, first), specs, 'requests/x/b-s0t1'), (e: Error) => e instanceof TileFormatError && /checksum/.test(e.message) && /b-s0t1/.test(e.message));
  });

  it('tensors of every dtype survive a bundle as strips', () => {
    const ts: Tensor[] = DTYPES.map((d, i) => makeTensor(d, [1, 2, 3, 3], sample(d, 18, 40 + i)));
    const buf = encodeBundle([{ items: ts.map((t) => t.data) }]);
    const got = decodeSegment(buf, ts.map((t) => ({ dtype: dtypeOf(t), count: 18 })), 'k');
    ts.forEach((t, i) => assert.ok(sameBits(got[i], t.data), dtypeOf(t)));
  });
});
