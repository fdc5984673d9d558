import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FS_STORE_TMP_DIR, FS_STORE_TMP_MARKER, FsStore } from '../../src/store/fs-store.ts';
import { InvalidKeyError, ObjectNotFoundError, StoreError } from '../../src/store/errors.ts';
import { runObjectStoreContract } from './contract.ts';

async function tempRoot(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'fsstore-test-'));
}

runObjectStoreContract('FsStore', async () => {
  const dir = await tempRoot();
  // Use a not-yet-existing subdirectory: the store must create its root lazily.
  return { store: new FsStore(join(dir, 'root')), cleanup: () => rm(dir, { recursive: true, force: true }) };
});

runObjectStoreContract('FsStore (fsync)', async () => {
  const dir = await tempRoot();
  return { store: new FsStore(dir, { fsync: true }), cleanup: () => rm(dir, { recursive: true, force: true }) };
});

describe('FsStore specifics', () => {
  it('maps keys to files under rootDir and prunes empty dirs on delete', async () => {
    const dir = await tempRoot();
    try {
      const s = new FsStore(dir);
      await s.put('job/1/layer/tile', Buffer.from('t'));
      assert.ok(existsSync(join(dir, 'job', '1', 'layer', 'tile')));
      await s.put('job/keep', Buffer.from('k'));
      await s.delete(['job/1/layer/tile']);
      assert.ok(!existsSync(join(dir, 'job', '1')), 'empty parents removed');
      assert.ok(existsSync(join(dir, 'job', 'keep')));
      assert.ok(existsSync(dir), 'root is never removed');
      await s.delete(['job/keep']);
      assert.ok(existsSync(dir), 'root is never removed');
      assert.deepEqual((await readdir(dir)).filter((n) => n !== FS_STORE_TMP_DIR), [], 'only the (empty) temp folder remains');
      assert.deepEqual(await readdir(join(dir, FS_STORE_TMP_DIR)), []);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('does not list in-flight temp files and reserves the temp marker in keys', async () => {
    const dir = await tempRoot();
    try {
      const s = new FsStore(dir);
      await s.put('x/obj', Buffer.from('1'));
      await writeFile(join(dir, 'x', `obj${FS_STORE_TMP_MARKER}123.1.abcd`), 'partial');
      assert.deepEqual(await s.list(''), ['x/obj']);
      await assert.rejects(s.put(`x/obj${FS_STORE_TMP_MARKER}9`, Buffer.from('1')), InvalidKeyError);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reports a clear StoreError when a key collides with a key prefix', async () => {
    const dir = await tempRoot();
    try {
      const s = new FsStore(dir);
      await s.put('a/b', Buffer.from('1'));
      await assert.rejects(s.put('a', Buffer.from('2')), (e: unknown) => e instanceof StoreError && /conflicts/.test((e as Error).message));
      await s.put('c', Buffer.from('1'));
      await assert.rejects(s.put('c/d', Buffer.from('2')), (e: unknown) => e instanceof StoreError && /conflicts/.test((e as Error).message));
      // The failed puts left nothing behind.
      assert.deepEqual(await s.list(''), ['a/b', 'c']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('two FsStore instances on one root see each other', async () => {
    const dir = await tempRoot();
    try {
      const a = new FsStore(dir);
      const b = new FsStore(join(dir, '.', ''));
      await a.put('shared', Buffer.from('hi'));
      assert.equal((await b.get('shared')).toString(), 'hi');
      await b.delete(['shared']);
      await assert.rejects(a.get('shared'), ObjectNotFoundError);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('cross-process: a reader never sees a partial object while another process overwrites it', async () => {
    const dir = await tempRoot();
    const SIZE = 4 * 1024 * 1024;
    const WRITE_MS = 1500;
    try {
      const s = new FsStore(dir);
      const makeVersion = (v: number) => {
        const body = Buffer.alloc(SIZE);
        for (let i = 32; i < SIZE; i += 4096) body.writeUInt32LE((v * 2654435761 + i) >>> 0, i);
        createHash('sha256').update(body.subarray(32)).digest().copy(body, 0);
        return body;
      };
      await s.put('hot/obj', makeVersion(0));

      const storeUrl = new URL('../../src/store/fs-store.ts', import.meta.url).href;
      const writer = `
        import { createHash } from 'node:crypto';
        import { FsStore } from ${JSON.stringify(storeUrl)};
        const s = new FsStore(${JSON.stringify(dir)});
        const SIZE = ${SIZE};
        const deadline = Date.now() + ${WRITE_MS};
        let v = 0;
        while (Date.now() < deadline) {
          v++;
          const body = Buffer.alloc(SIZE);
          for (let i = 32; i < SIZE; i += 4096) body.writeUInt32LE((v * 2654435761 + i) >>> 0, i);
          createHash('sha256').update(body.subarray(32)).digest().copy(body, 0);
          await s.put('hot/obj', body);
          await s.put('hot/v' + (v % 4), body.subarray(0, 1024)); // churn the directory too
          if (v % 4 === 0) await s.delete(['hot/v1', 'hot/v2']);
        }
        process.stdout.write(String(v));
      `;
      const tsx = import.meta.resolve('tsx');
      const child = spawn(process.execPath, ['--import', tsx, '--input-type=module', '-e', writer], {
        stdio: ['ignore', 'pipe', 'pipe'],
        cwd: fileURLToPath(new URL('../..', import.meta.url)),
      });
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (err += d));
      let exited = false;
      const exit = new Promise<number | null>((res) => child.on('exit', (code) => { exited = true; res(code); }));

      let reads = 0;
      const seen = new Set<string>();
      while (!exited) {
        const body = await s.get('hot/obj');
        assert.equal(body.length, SIZE, 'full-size object');
        const digest = createHash('sha256').update(body.subarray(32)).digest();
        assert.ok(digest.equals(body.subarray(0, 32)), `checksum mismatch on read #${reads}: torn object`);
        seen.add(digest.toString('hex'));
        const listed = await s.list('hot/');
        assert.ok(listed.every((k) => !k.includes(FS_STORE_TMP_MARKER)), 'no temp files listed');
        assert.ok(listed.includes('hot/obj'), 'object never disappears during overwrite');
        reads++;
      }
      const code = await exit;
      assert.equal(code, 0, `writer failed: ${err}`);
      const versions = Number(out);
      assert.ok(versions >= 3, `writer wrote only ${versions} versions`);
      assert.ok(reads >= 3, `reader did only ${reads} reads`);
      assert.ok(seen.size >= 2, 'reader observed several versions');
      const leftovers = (await readdir(join(dir, 'hot'))).filter((n) => n.includes(FS_STORE_TMP_MARKER));
      assert.deepEqual(leftovers, [], 'no temp files left behind');
      assert.deepEqual(await readdir(join(dir, FS_STORE_TMP_DIR)), [], 'the temp folder is empty');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('removes temp files of dead writers, keeps live ones, and prunes what they kept alive', async () => {
    const dir = await tempRoot();
    try {
      const dead = spawn(process.execPath, ['-e', '']);
      const deadPid = dead.pid!;
      await new Promise((r) => dead.on('exit', r));
      const s = new FsStore(dir, { sweepOnOpen: false });
      await s.put('requests/r1/input', Buffer.from('x'));
      const tmp = join(dir, FS_STORE_TMP_DIR);
      await writeFile(join(tmp, `${deadPid}.1.abcd.b-s0t0`), 'killed mid-put');
      await writeFile(join(tmp, `${process.pid}.99.abcd.b-s0t1`), 'still being written');
      const old = join(tmp, `${process.pid}.98.abcd.b-s0t2`);
      await writeFile(old, 'pid reused long ago');
      await utimes(old, new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000));
      // An older FsStore wrote temp files next to their objects.
      await mkdir(join(dir, 'requests', 'r2'), { recursive: true });
      await writeFile(join(dir, 'requests', 'r2', `b-x${FS_STORE_TMP_MARKER}${deadPid}.3.abcd`), 'legacy');
      assert.equal(await s.sweepTemp(), 3);
      assert.deepEqual(await readdir(tmp), [`${process.pid}.99.abcd.b-s0t1`]);
      assert.deepEqual(await readdir(join(dir, 'requests')), ['r1'], 'the folder only a temp file kept is gone');
      assert.deepEqual(await s.list(''), ['requests/r1/input']);
      // Opening a store sweeps by itself (once per root and process).
      await writeFile(join(tmp, `${deadPid}.2.abcd.b-s1t0`), 'killed mid-put');
      new FsStore(dir);
      const swept = async () => !(await readdir(tmp)).some((n) => n.startsWith(`${deadPid}.`));
      for (let i = 0; i < 50 && !(await swept()); i++) await new Promise((r) => setTimeout(r, 20));
      assert.ok(await swept(), 'the new store removed the dead writer\'s temp file');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a writer SIGKILLed mid-put leaves nothing under the request once the request is deleted and a store reopens', async () => {
    const dir = await tempRoot();
    try {
      const storeUrl = new URL('../../src/store/fs-store.ts', import.meta.url).href;
      const writer = `
        import { FsStore } from ${JSON.stringify(storeUrl)};
        const s = new FsStore(${JSON.stringify(dir)});
        const body = Buffer.alloc(16 << 20, 7);
        process.stdout.write('ready\\n');
        for (let i = 0; ; i++) await s.put('requests/r1/b-s0t' + (i % 4), body);
      `;
      const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), '--input-type=module', '-e', writer], {
        stdio: ['ignore', 'pipe', 'inherit'], cwd: fileURLToPath(new URL('../..', import.meta.url)),
      });
      await new Promise<void>((res) => child.stdout.once('data', () => res()));
      await new Promise((r) => setTimeout(r, 300));
      child.kill('SIGKILL');
      await new Promise((r) => child.on('exit', r));
      const s = new FsStore(dir, { sweepOnOpen: false });
      await s.sweepTemp();
      await s.delete(await s.list('requests/'));
      assert.deepEqual(await readdir(dir), [FS_STORE_TMP_DIR], 'no request folder remains');
      assert.deepEqual(await readdir(join(dir, FS_STORE_TMP_DIR)), [], 'no temp file of the killed writer remains');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
