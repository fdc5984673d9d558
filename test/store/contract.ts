/**
 * Shared behavioural contract for ObjectStore implementations.
 * Usage (in a *.test.ts file):
 *   runObjectStoreContract('FsStore', async () => ({ store, cleanup }));
 * Every `it` gets a fresh store from `make()` and calls `cleanup()` afterwards,
 * so the suite can also run against a real bucket under a unique prefix.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import type { ObjectStore } from '../../src/store/object-store.ts';
import { InvalidKeyError, ObjectNotFoundError, StoreError } from '../../src/store/errors.ts';

export type StoreFactory = () => Promise<{ store: ObjectStore; cleanup: () => Promise<void> }>;

export function runObjectStoreContract(name: string, make: StoreFactory): void {
  const withStore = (fn: (store: ObjectStore) => Promise<void>) => async () => {
    const { store, cleanup } = await make();
    try {
      await fn(store);
    } finally {
      await cleanup();
    }
  };

  describe(`ObjectStore contract: ${name}`, () => {
    describe('put/get', () => {
      it('roundtrips binary data (all byte values)', withStore(async (s) => {
        const body = Buffer.alloc(512);
        for (let i = 0; i < body.length; i++) body[i] = i % 256;
        await s.put('bin/all-bytes', body);
        const got = await s.get('bin/all-bytes');
        assert.ok(Buffer.isBuffer(got), 'get returns a Buffer');
        assert.deepEqual(got, body);
      }));

      it('accepts a plain Uint8Array body', withStore(async (s) => {
        const u8 = new Uint8Array([1, 2, 3, 250, 0, 7]);
        await s.put('u8', u8);
        assert.deepEqual(await s.get('u8'), Buffer.from(u8));
      }));

      it('honours byteOffset of a Buffer view (subarray)', withStore(async (s) => {
        const big = Buffer.from('xxxxHELLOyyyy');
        await s.put('view', big.subarray(4, 9));
        assert.equal((await s.get('view')).toString(), 'HELLO');
      }));

      it('stores an empty object', withStore(async (s) => {
        await s.put('empty', Buffer.alloc(0));
        const got = await s.get('empty');
        assert.equal(got.length, 0);
        assert.deepEqual(await s.list('empty'), ['empty']);
      }));

      it('roundtrips a 5 MB object', withStore(async (s) => {
        const body = randomBytes(5 * 1024 * 1024);
        await s.put('big/five-mb', body);
        const got = await s.get('big/five-mb');
        assert.equal(got.length, body.length);
        assert.equal(sha(got), sha(body));
      }));

      it('overwrites an existing object', withStore(async (s) => {
        await s.put('ow', Buffer.from('first version, longer'));
        await s.put('ow', Buffer.from('second'));
        assert.equal((await s.get('ow')).toString(), 'second');
        assert.deepEqual(await s.list('ow'), ['ow']);
      }));

      it('is isolated from later mutation of the put buffer and the got buffer', withStore(async (s) => {
        const body = Buffer.from('abcdef');
        await s.put('iso', body);
        body.fill(0);
        const got = await s.get('iso');
        assert.equal(got.toString(), 'abcdef');
        got.fill(0);
        assert.equal((await s.get('iso')).toString(), 'abcdef');
      }));

      it('accepts unicode and punctuation in keys', withStore(async (s) => {
        const key = 'req-1/层 3/tile_0-1.f32 (copy)+@=';
        await s.put(key, Buffer.from('u'));
        assert.equal((await s.get(key)).toString(), 'u');
        assert.deepEqual(await s.list('req-1/'), [key]);
      }));
    });

    describe('ranged get', () => {
      const body = Buffer.from('0123456789abcdefghij'); // 20 bytes
      const ranged = (fn: (s: ObjectStore) => Promise<void>) =>
        withStore(async (s) => {
          await s.put('r/obj', body);
          await fn(s);
        });

      it('reads from the start', ranged(async (s) => {
        assert.equal((await s.get('r/obj', { start: 0, end: 4 })).toString(), '0123');
      }));
      it('reads from the middle', ranged(async (s) => {
        assert.equal((await s.get('r/obj', { start: 5, end: 12 })).toString(), '56789ab');
      }));
      it('reads to the end', ranged(async (s) => {
        assert.equal((await s.get('r/obj', { start: 15, end: 20 })).toString(), 'fghij');
      }));
      it('reads a single byte', ranged(async (s) => {
        assert.equal((await s.get('r/obj', { start: 19, end: 20 })).toString(), 'j');
      }));
      it('reads the whole object', ranged(async (s) => {
        assert.deepEqual(await s.get('r/obj', { start: 0, end: 20 }), body);
      }));
      it('ranged read of a large object', withStore(async (s) => {
        const big = randomBytes(3 * 1024 * 1024 + 17);
        await s.put('r/big', big);
        const start = 1024 * 1024 + 3;
        const end = big.length - 5;
        assert.equal(sha(await s.get('r/big', { start, end })), sha(big.subarray(start, end)));
      }));

      const bad: Array<[string, { start: number; end: number }]> = [
        ['end past the size', { start: 10, end: 21 }],
        ['start past the size', { start: 25, end: 30 }],
        ['negative start', { start: -1, end: 4 }],
        ['end before start', { start: 8, end: 4 }],
        ['empty range', { start: 4, end: 4 }],
        ['non-integer bounds', { start: 1.5, end: 4 }],
      ];
      for (const [label, range] of bad) {
        it(`rejects an invalid range (${label}) with a StoreError`, ranged(async (s) => {
          await assert.rejects(s.get('r/obj', range), (err: unknown) => {
            assert.ok(err instanceof StoreError, `expected StoreError, got ${String(err)}`);
            assert.ok(!(err instanceof ObjectNotFoundError));
            assert.match((err as Error).message, /range/i);
            return true;
          });
        }));
      }

      it('rejects any range on an empty object', withStore(async (s) => {
        await s.put('r/empty', Buffer.alloc(0));
        await assert.rejects(s.get('r/empty', { start: 0, end: 1 }), StoreError);
      }));

      it('ranged get of a missing key is ObjectNotFoundError', withStore(async (s) => {
        await assert.rejects(s.get('r/missing', { start: 0, end: 1 }), ObjectNotFoundError);
      }));
    });

    describe('missing objects', () => {
      it('get of a missing key rejects with ObjectNotFoundError naming the key', withStore(async (s) => {
        await assert.rejects(s.get('nope/not-here.bin'), (err: unknown) => {
          assert.ok(err instanceof ObjectNotFoundError, `expected ObjectNotFoundError, got ${String(err)}`);
          assert.ok(err instanceof StoreError);
          assert.equal(err.key, 'nope/not-here.bin');
          assert.match(err.message, /nope\/not-here\.bin/);
          return true;
        });
      }));

      it('a key prefix of existing keys is not itself an object', withStore(async (s) => {
        await s.put('dir/child', Buffer.from('x'));
        await assert.rejects(s.get('dir'), ObjectNotFoundError);
      }));

      it('get below an existing object is ObjectNotFoundError', withStore(async (s) => {
        await s.put('leaf', Buffer.from('x'));
        await assert.rejects(s.get('leaf/below'), ObjectNotFoundError);
      }));
    });

    describe('delete', () => {
      it('deletes multiple keys and ignores missing ones', withStore(async (s) => {
        await Promise.all(['d/1', 'd/2', 'd/3', 'd/sub/4', 'keep'].map((k) => s.put(k, Buffer.from(k))));
        await s.delete(['d/1', 'd/sub/4', 'd/missing', 'other/missing', 'd/3']);
        assert.deepEqual(await s.list(''), ['d/2', 'keep']);
        await assert.rejects(s.get('d/1'), ObjectNotFoundError);
        assert.equal((await s.get('d/2')).toString(), 'd/2');
      }));

      it('delete of an empty list and of only-missing keys is a no-op', withStore(async (s) => {
        await s.delete([]);
        await s.delete(['x/y/z', 'q']);
        assert.deepEqual(await s.list(''), []);
      }));

      it('a key can be recreated after deletion', withStore(async (s) => {
        await s.put('again/a/b', Buffer.from('1'));
        await s.delete(['again/a/b']);
        assert.deepEqual(await s.list('again'), []);
        await s.put('again/a/b', Buffer.from('2'));
        assert.equal((await s.get('again/a/b')).toString(), '2');
      }));

      it('rejects invalid keys in delete', withStore(async (s) => {
        await assert.rejects(s.delete(['ok', '../escape']), InvalidKeyError);
      }));
    });

    describe('list', () => {
      const keys = ['a/1', 'a/2', 'a/sub/x', 'a/sub/deeper/y', 'ab/1', 'abc', 'b/1', 'a-z'];
      const listed = (fn: (s: ObjectStore) => Promise<void>) =>
        withStore(async (s) => {
          // Insert in shuffled order so sorting is actually exercised.
          for (const k of [...keys].reverse()) await s.put(k, Buffer.from(k));
          await fn(s);
        });

      it('lists everything with the empty prefix, sorted', listed(async (s) => {
        assert.deepEqual(await s.list(''), [...keys].sort());
      }));
      it('lists nested keys under a "directory" prefix', listed(async (s) => {
        assert.deepEqual(await s.list('a/'), ['a/1', 'a/2', 'a/sub/deeper/y', 'a/sub/x']);
      }));
      it('does not leak sibling prefixes (a/ vs ab/)', listed(async (s) => {
        const got = await s.list('a/');
        assert.ok(!got.some((k) => k.startsWith('ab')), `leaked: ${got.join(',')}`);
        assert.deepEqual(await s.list('ab/'), ['ab/1']);
      }));
      it('treats the prefix as a plain string prefix (not segment-aware)', listed(async (s) => {
        assert.deepEqual(await s.list('a'), [...keys].filter((k) => k.startsWith('a')).sort());
        assert.deepEqual(await s.list('ab'), ['ab/1', 'abc']);
        assert.deepEqual(await s.list('a/su'), ['a/sub/deeper/y', 'a/sub/x']);
        assert.deepEqual(await s.list('a/sub/deeper/y'), ['a/sub/deeper/y']);
      }));
      it('returns [] for a prefix with no matches', listed(async (s) => {
        assert.deepEqual(await s.list('zzz/'), []);
        assert.deepEqual(await s.list('a/1/'), []);
      }));
      it('sorts numerically-named keys lexicographically', withStore(async (s) => {
        for (const k of ['t/10', 't/9', 't/1', 't/100', 't/02']) await s.put(k, Buffer.from('x'));
        assert.deepEqual(await s.list('t/'), ['t/02', 't/1', 't/10', 't/100', 't/9']);
      }));
    });

    describe('key validation', () => {
      const invalid: Array<[string, string]> = [
        ['empty', ''],
        ['absolute', '/abs/key'],
        ['dot-dot segment', 'a/../b'],
        ['leading dot-dot', '../x'],
        ['trailing dot-dot', 'a/..'],
        ['backslash', 'a\\b'],
        ['over 1023 bytes', 'k'.repeat(1024)],
        ['over 1023 bytes in UTF-8 (multi-byte)', '层'.repeat(342)], // 1026 bytes
        ['double slash', 'a//b'],
        ['trailing slash', 'a/b/'],
        ['NUL byte', 'a\u0000b'],
      ];
      for (const [label, key] of invalid) {
        it(`rejects ${label} keys with InvalidKeyError on put/get/delete`, withStore(async (s) => {
          await assert.rejects(s.put(key, Buffer.from('x')), InvalidKeyError);
          await assert.rejects(s.get(key), InvalidKeyError);
          await assert.rejects(s.get(key, { start: 0, end: 1 }), InvalidKeyError);
          await assert.rejects(s.delete([key]), InvalidKeyError);
        }));
      }

      it('InvalidKeyError is a StoreError carrying the key', withStore(async (s) => {
        await assert.rejects(s.get('../up'), (err: unknown) => {
          assert.ok(err instanceof InvalidKeyError);
          assert.ok(err instanceof StoreError);
          assert.equal(err.key, '../up');
          assert.equal(err.name, 'InvalidKeyError');
          return true;
        });
      }));

      it('accepts a key of exactly 1023 bytes', withStore(async (s) => {
        // Split into segments so filesystem name limits (255 bytes) are not hit.
        const seg = 'x'.repeat(200);
        const key = [seg, seg, seg, seg, 'y'.repeat(1023 - 4 * 201)].join('/');
        assert.equal(Buffer.byteLength(key), 1023);
        await s.put(key, Buffer.from('ok'));
        assert.equal((await s.get(key)).toString(), 'ok');
      }));

      it('rejects invalid list prefixes', withStore(async (s) => {
        await assert.rejects(s.list('/abs'), InvalidKeyError);
        await assert.rejects(s.list('a/../b'), InvalidKeyError);
        await assert.rejects(s.list('a\\b'), InvalidKeyError);
      }));
    });

    describe('concurrency', () => {
      it('handles 50 parallel puts then 50 parallel gets', withStore(async (s) => {
        const bodies = Array.from({ length: 50 }, (_, i) => randomBytes(1000 + i * 997));
        await Promise.all(bodies.map((b, i) => s.put(`par/${i % 5}/obj-${i}`, b)));
        const got = await Promise.all(bodies.map((_, i) => s.get(`par/${i % 5}/obj-${i}`)));
        got.forEach((g, i) => assert.equal(sha(g), sha(bodies[i]), `object ${i}`));
        assert.equal((await s.list('par/')).length, 50);
      }));

      it('handles interleaved parallel puts, gets and ranged gets', withStore(async (s) => {
        const bodies = Array.from({ length: 50 }, (_, i) => randomBytes(4096 + i));
        await Promise.all(bodies.map(async (b, i) => {
          const key = `mix/obj-${String(i).padStart(2, '0')}`;
          await s.put(key, b);
          const [whole, part] = await Promise.all([s.get(key), s.get(key, { start: 100, end: 200 })]);
          assert.equal(sha(whole), sha(b));
          assert.deepEqual(part, b.subarray(100, 200));
        }));
        const listed = await s.list('mix/');
        assert.equal(listed.length, 50);
        assert.deepEqual(listed, [...listed].sort());
      }));

      it('parallel overwrites of one key leave exactly one complete version', withStore(async (s) => {
        const versions = Array.from({ length: 20 }, (_, i) => Buffer.alloc(64 * 1024, i));
        await Promise.all(versions.map((v) => s.put('race/key', v)));
        const got = await s.get('race/key');
        assert.equal(got.length, 64 * 1024);
        assert.ok(got.every((b) => b === got[0]), 'object is one whole version');
        assert.deepEqual(await s.list('race/'), ['race/key']);
      }));

      it('parallel deletes and puts under the same prefix do not fail', withStore(async (s) => {
        const ops: Promise<void>[] = [];
        for (let i = 0; i < 50; i++) {
          const key = `churn/p${i % 3}/k${i}`;
          ops.push(s.put(key, Buffer.from(key)).then(() => s.delete([key, `churn/p${(i + 1) % 3}/k${i - 1}`])));
        }
        await Promise.all(ops);
        await s.put('churn/p0/final', Buffer.from('f'));
        assert.ok((await s.list('churn/')).includes('churn/p0/final'));
      }));
    });
  });
}

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}
