/**
 * Zip and unzip with yazl/yauzl (no `zip`/`unzip` CLI needed). Archives are deterministic: sorted
 * entries, a fixed timestamp, and the file modes kept (so the executable bit survives). Symlinks
 * are refused: FC unpacks code zips without them, and the packager never produces any.
 */
import { createWriteStream } from 'node:fs';
import { chmod, lstat, mkdir, readdir, stat } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import yauzl from 'yauzl';
import yazl from 'yazl';

const FIXED_MTIME = new Date('2020-01-01T00:00:00Z');

export interface ZipSummary { files: number; unzippedBytes: number; zippedBytes: number }

/** Every regular file under `dir`, as sorted POSIX relative paths. */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    const entries = await readdir(d, { withFileTypes: true });
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) out.push(relative(dir, p).split(sep).join('/'));
      else throw new Error(`${p}: not a regular file or directory (symlinks are not allowed in a code package)`);
    }
  };
  await walk(dir);
  return out.sort();
}

export async function zipDirectory(dir: string, zipPath: string, opts: { prefix?: string } = {}): Promise<ZipSummary> {
  const files = await listFiles(dir);
  const zip = new yazl.ZipFile();
  let unzippedBytes = 0;
  for (const f of files) {
    const abs = join(dir, f);
    const st = await lstat(abs);
    unzippedBytes += st.size;
    zip.addFile(abs, `${opts.prefix ?? ''}${f}`, { mtime: FIXED_MTIME, mode: 0o100000 | (st.mode & 0o755), compress: true });
  }
  zip.end();
  await mkdir(dirname(zipPath), { recursive: true });
  await pipeline(zip.outputStream, createWriteStream(zipPath));
  return { files: files.length, unzippedBytes, zippedBytes: (await stat(zipPath)).size };
}

/** Extracts `zipPath` into `dest` (created), refusing entries that escape it. */
export async function extractZip(zipPath: string, dest: string): Promise<{ files: number; bytes: number }> {
  const root = resolve(dest);
  await mkdir(root, { recursive: true });
  const zip = await yauzl.openPromise(zipPath, { lazyEntries: true, strictFileNames: true, validateEntrySizes: true });
  let files = 0;
  let bytes = 0;
  try {
    for await (const entry of zip.eachEntry()) {
      const target = resolve(root, entry.fileName);
      if (target !== root && !target.startsWith(root + sep)) throw new Error(`zip entry ${entry.fileName} escapes the destination`);
      if (entry.fileName.endsWith('/')) {
        await mkdir(target, { recursive: true });
        continue;
      }
      const mode = (entry.externalFileAttributes >>> 16) & 0o777;
      if (((entry.externalFileAttributes >>> 16) & 0o170000) === 0o120000) throw new Error(`zip entry ${entry.fileName} is a symlink`);
      await mkdir(dirname(target), { recursive: true });
      await pipeline(await zip.openReadStreamPromise(entry), createWriteStream(target));
      if (mode) await chmod(target, mode);
      files++;
      bytes += entry.uncompressedSize;
    }
  } finally {
    zip.close();
  }
  return { files, bytes };
}
