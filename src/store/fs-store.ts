import { randomBytes } from 'node:crypto';
import { existsSync, watch } from 'node:fs';
import { mkdir, open, readdir, rename, rm, rmdir, stat, unlink, writeFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import type { ObjectStore } from './object-store.ts';
import {
  InvalidKeyError,
  ObjectNotFoundError,
  StoreAuthError,
  StoreError,
  StoreThrottledError,
  compareKeys,
  validateKey,
  validatePrefix,
  validateRange,
} from './errors.ts';

/**
 * Marker embedded in temp-file names. Keys containing it are rejected by FsStore
 * (InvalidKeyError) so a temp file can never be mistaken for an object.
 */
export const FS_STORE_TMP_MARKER = '.~tmp.';

/** The folder under the root that holds every temp file (its name has the marker, so no key can name it). */
export const FS_STORE_TMP_DIR = `${FS_STORE_TMP_MARKER}d`;

export interface FsStoreOptions {
  /** fsync each object before the rename (crash durability). Default false: atomicity vs readers does not need it. */
  fsync?: boolean;
  /**
   * Remove temp files of dead writers when the store is opened (default true): files whose
   * writing process no longer exists, or older than `tempMaxAgeMs`.
   */
  sweepOnOpen?: boolean;
  /** A temp file this old is abandoned whatever its process (a reused pid). Default 10 minutes. */
  tempMaxAgeMs?: number;
}

let tmpCounter = 0;
/** Roots already swept by this process: every function instance sweeps once when it starts. */
const sweptRoots = new Set<string>();

/**
 * ObjectStore on a local directory; the embedded default for local runs.
 *
 * - Key `a/b/c` is the file `<rootDir>/a/b/c`, so the tree is easy to inspect.
 *   Consequently a key cannot be both an object and a "directory" of other keys
 *   (`a` and `a/b`); such a put fails with a StoreError.
 * - put writes a temp file and renames it over the key, so concurrent readers (in any
 *   process) see the old or the new body, never a partial one. An open reader keeps
 *   reading the inode it opened. Temp files live in one folder under the root
 *   (FS_STORE_TMP_DIR), never next to objects: a writer killed mid-put leaves nothing under a
 *   request's prefix (which would also keep its folder from being pruned), and the next
 *   store opened on the root removes what dead writers left (sweepTemp).
 * - delete removes now-empty parent directories best-effort; put retries if a
 *   concurrent delete removes its directory.
 */
export class FsStore implements ObjectStore {
  readonly rootDir: string;
  private readonly fsync: boolean;
  private readonly tmpDir: string;
  private readonly tempMaxAgeMs: number;
  private tmpDirMade = false;

  constructor(rootDir: string, options: FsStoreOptions = {}) {
    if (!rootDir) throw new TypeError('FsStore: rootDir is required');
    this.rootDir = resolve(rootDir);
    this.fsync = options.fsync ?? false;
    this.tmpDir = join(this.rootDir, FS_STORE_TMP_DIR);
    this.tempMaxAgeMs = options.tempMaxAgeMs ?? 10 * 60_000;
    if ((options.sweepOnOpen ?? true) && !sweptRoots.has(this.rootDir)) {
      sweptRoots.add(this.rootDir);
      // Best effort and in the background: opening a store never waits for or fails on it.
      this.sweepTemp().catch(() => undefined);
    }
  }

  /**
   * Removes temp files of writers that died mid-put: their process is gone, or the file is
   * older than `tempMaxAgeMs`. Also looks through the whole tree for temp files an older
   * version of this store wrote next to their objects. Returns how many were removed.
   */
  async sweepTemp(): Promise<number> {
    let removed = 0;
    const consider = async (path: string, name: string) => {
      if (!this.abandoned(name) && !(await this.olderThan(path, this.tempMaxAgeMs))) return;
      try {
        await unlink(path);
        removed++;
      } catch {
        return; // already gone (its writer finished or another sweeper was first)
      }
      // An old-style temp file may have been all that kept a request's folder alive.
      if (dirname(path) !== this.tmpDir) await this.pruneEmptyDirs(dirname(path));
    };
    const walk = async (dir: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch {
        return;
      }
      await Promise.all(entries.map(async (e) => {
        const path = join(dir, e.name);
        if (e.isDirectory()) await walk(path);
        else if (dir === this.tmpDir || e.name.includes(FS_STORE_TMP_MARKER)) await consider(path, e.name);
      }));
    };
    await walk(this.rootDir);
    return removed;
  }

  /** Whether a temp file's writer is known to be dead (the name starts with its pid, after the key's name in old files). */
  private abandoned(name: string): boolean {
    const tail = name.includes(FS_STORE_TMP_MARKER) && !name.startsWith(FS_STORE_TMP_MARKER) ? name.slice(name.indexOf(FS_STORE_TMP_MARKER) + FS_STORE_TMP_MARKER.length) : name;
    const pid = Number(/^(\d+)\./.exec(tail)?.[1]);
    if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid) return false;
    try {
      process.kill(pid, 0);
      return false;
    } catch (err) {
      return isCode(err, 'ESRCH');
    }
  }

  private async olderThan(path: string, ms: number): Promise<boolean> {
    try {
      return Date.now() - (await stat(path)).mtimeMs > ms;
    } catch {
      return false;
    }
  }

  private pathFor(key: string): string {
    validateKey(key);
    if (key.includes(FS_STORE_TMP_MARKER)) {
      throw new InvalidKeyError(key, `FsStore reserves the substring ${JSON.stringify(FS_STORE_TMP_MARKER)} for temp files`);
    }
    return join(this.rootDir, ...key.split('/'));
  }

  /**
   * Resolves when the directory that would hold `key` changes (inotify), when `key` already
   * exists, or after `ms`: a native wait for the exchange, with no polling reads.
   */
  changed(key: string, ms: number): Promise<void> {
    const path = this.pathFor(key);
    return new Promise<void>((resolve) => {
      let watcher: ReturnType<typeof watch> | undefined;
      const done = () => { clearTimeout(timer); watcher?.close(); resolve(); };
      const timer = setTimeout(done, ms);
      try {
        watcher = watch(dirname(path), { persistent: false }, done);
        watcher.on('error', () => undefined);
      } catch {
        return; // no directory yet: the timer decides
      }
      if (existsSync(path)) done();
    });
  }

  async get(key: string, range?: { start: number; end: number }): Promise<Buffer> {
    const path = this.pathFor(key);
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      if (isCode(err, 'ENOENT', 'ENOTDIR', 'EISDIR')) throw new ObjectNotFoundError(key, { cause: err });
      throw mapFsError(err, key, 'get');
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new ObjectNotFoundError(key); // a "directory" of other keys
      let start = 0;
      let end = st.size;
      if (range !== undefined) {
        validateRange(key, range, st.size);
        ({ start, end } = range);
      }
      const buf = Buffer.allocUnsafe(end - start);
      let off = 0;
      while (off < buf.length) {
        const { bytesRead } = await fh.read(buf, off, buf.length - off, start + off);
        if (bytesRead === 0) throw new StoreError(`fs store get: object ${JSON.stringify(key)} shrank while reading (external modification?)`, { key });
        off += bytesRead;
      }
      return buf;
    } catch (err) {
      if (err instanceof StoreError) throw err;
      throw mapFsError(err, key, 'get');
    } finally {
      await fh.close().catch(() => {});
    }
  }

  async put(key: string, body: Buffer | Uint8Array): Promise<void> {
    const path = this.pathFor(key);
    if (!(body instanceof Uint8Array)) throw new TypeError(`put(${JSON.stringify(key)}): body must be a Buffer or Uint8Array`);
    const dir = dirname(path);
    // The pid leads the name so a sweeper can tell whether the writer is still alive.
    const tmp = join(this.tmpDir, `${process.pid}.${++tmpCounter}.${randomBytes(4).toString('hex')}.${basename(path).slice(0, 64)}`);
    for (let attempt = 0; ; attempt++) {
      try {
        if (!this.tmpDirMade) await mkdir(this.tmpDir, { recursive: true });
        this.tmpDirMade = true;
      } catch (err) {
        throw mapFsError(err, key, 'put');
      }
      try {
        if (this.fsync) {
          const fh = await open(tmp, 'wx');
          try {
            await fh.writeFile(body);
            await fh.sync();
          } finally {
            await fh.close();
          }
        } else {
          await writeFile(tmp, body, { flag: 'wx' });
        }
        break;
      } catch (err) {
        await rm(tmp, { force: true }).catch(() => {});
        // The temp folder was removed under us (a test wiping the root): make it again.
        if (isCode(err, 'ENOENT') && attempt < 10) { this.tmpDirMade = false; continue; }
        throw mapFsError(err, key, 'put');
      }
    }
    // Rename into place; retry if a concurrent delete pruned the target directory in between.
    for (let attempt = 0; ; attempt++) {
      try {
        await mkdir(dir, { recursive: true });
      } catch (err) {
        // A concurrent delete pruned a parent while mkdir walked down (seen as ENOENT or
        // EEXIST): try again; a real conflict with an object fails every time.
        if (isCode(err, 'ENOENT', 'EEXIST') && attempt < 10) continue;
        await rm(tmp, { force: true }).catch(() => {});
        if (isCode(err, 'ENOTDIR', 'EEXIST')) throw conflict(key, err);
        throw mapFsError(err, key, 'put');
      }
      try {
        await rename(tmp, path);
        return;
      } catch (err) {
        if (isCode(err, 'ENOENT') && attempt < 10) continue;
        await rm(tmp, { force: true }).catch(() => {});
        if (isCode(err, 'EISDIR', 'ENOTEMPTY', 'EEXIST', 'ENOTDIR')) throw conflict(key, err);
        throw mapFsError(err, key, 'put');
      }
    }
  }

  async delete(keys: string[]): Promise<void> {
    const paths = keys.map((k) => this.pathFor(k));
    await mapLimit(paths, 32, async (path, i) => {
      try {
        await unlink(path);
      } catch (err) {
        // Missing, or the key names a "directory" of other keys: nothing to delete.
        if (isCode(err, 'ENOENT', 'ENOTDIR', 'EISDIR')) return;
        if (isCode(err, 'EPERM')) return; // unlink() on a directory on some platforms
        throw mapFsError(err, keys[i], 'delete');
      }
      await this.pruneEmptyDirs(dirname(path));
    });
  }

  private async pruneEmptyDirs(dir: string): Promise<void> {
    const root = this.rootDir;
    while (dir !== root && dir.startsWith(root + sep)) {
      try {
        await rmdir(dir);
      } catch {
        return; // not empty, already gone, or busy: best effort
      }
      dir = dirname(dir);
    }
  }

  async list(prefix: string): Promise<string[]> {
    validatePrefix(prefix);
    const slash = prefix.lastIndexOf('/');
    const dirPart = slash >= 0 ? prefix.slice(0, slash) : '';
    const namePrefix = prefix.slice(slash + 1);
    const out: string[] = [];
    const startDir = dirPart ? join(this.rootDir, ...dirPart.split('/')) : this.rootDir;
    await this.walk(startDir, dirPart ? `${dirPart}/` : '', namePrefix, out);
    return out.sort(compareKeys);
  }

  private async walk(absDir: string, keyPrefix: string, nameFilter: string, out: string[]): Promise<void> {
    let entries;
    try {
      entries = await readdir(absDir, { withFileTypes: true });
    } catch (err) {
      if (isCode(err, 'ENOENT', 'ENOTDIR')) return; // nothing there (or removed concurrently)
      throw mapFsError(err, keyPrefix, 'list');
    }
    const subdirs: Promise<void>[] = [];
    for (const e of entries) {
      if (nameFilter && !e.name.startsWith(nameFilter)) continue;
      if (e.name.includes(FS_STORE_TMP_MARKER)) continue; // the temp folder, or an in-flight put of an older version
      if (e.isDirectory()) {
        subdirs.push(this.walk(join(absDir, e.name), `${keyPrefix}${e.name}/`, '', out));
      } else if (e.isFile()) {
        out.push(keyPrefix + e.name);
      }
    }
    await Promise.all(subdirs);
  }
}

function conflict(key: string, cause: unknown): StoreError {
  return new StoreError(
    `fs store put ${JSON.stringify(key)}: key conflicts with an existing object or key prefix ` +
      '(FsStore cannot hold both "a" and "a/b")',
    { key, cause },
  );
}

function isCode(err: unknown, ...codes: string[]): boolean {
  return typeof err === 'object' && err !== null && codes.includes((err as NodeJS.ErrnoException).code ?? '');
}

function mapFsError(err: unknown, key: string, op: string): StoreError {
  if (err instanceof StoreError) return err;
  const code = (err as NodeJS.ErrnoException)?.code;
  const msg = `fs store ${op} ${JSON.stringify(key)} failed: ${(err as Error)?.message ?? String(err)}`;
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return new StoreAuthError(msg, { key, cause: err });
  if (code === 'EMFILE' || code === 'ENFILE' || code === 'EAGAIN' || code === 'EBUSY') return new StoreThrottledError(msg, { key, cause: err });
  if (code === 'ENAMETOOLONG') return new InvalidKeyError(key, 'path too long for the filesystem (a segment is probably over 255 bytes)');
  return new StoreError(msg, { key, cause: err });
}

async function mapLimit<T>(items: T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  });
  await Promise.all(workers);
}
