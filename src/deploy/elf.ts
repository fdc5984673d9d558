/**
 * A minimal ELF64 reader for the packaging checks: which shared libraries a `.node`/`.so` file
 * loads (DT_NEEDED, under which exact name), where it looks for them (RPATH/RUNPATH), its
 * machine, and the symbol versions it needs from each system library (GLIBC_2.28, ...). This is
 * what `readelf -d` / `ldd` would tell, without depending on binutils being installed.
 */

export const EM_X86_64 = 62;
export const EM_AARCH64 = 183;

export interface ElfInfo {
  machine: number;
  soname?: string;
  needed: string[];
  /** DT_RUNPATH, or DT_RPATH when there is no RUNPATH, split on ':'. */
  searchPath: string[];
  /** Symbol versions needed per library, e.g. {'libc.so.6': ['GLIBC_2.14', ...]}. */
  versionNeeds: Record<string, string[]>;
}

export class ElfError extends Error {
  override name = 'ElfError';
}

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const DT_NULL = 0n;
const DT_NEEDED = 1n;
const DT_STRTAB = 5n;
const DT_STRSZ = 10n;
const DT_SONAME = 14n;
const DT_RPATH = 15n;
const DT_RUNPATH = 29n;
const DT_VERNEED = 0x6ffffffen;
const DT_VERNEEDNUM = 0x6fffffffn;

export function isElf(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46;
}

export function readElf(bytes: Uint8Array, label = 'ELF file'): ElfInfo {
  if (!isElf(bytes)) throw new ElfError(`${label}: not an ELF file`);
  if (bytes[4] !== 2) throw new ElfError(`${label}: not a 64-bit ELF file (class ${bytes[4]})`);
  if (bytes[5] !== 1) throw new ElfError(`${label}: not a little-endian ELF file`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u16 = (o: number) => dv.getUint16(o, true);
  const u32 = (o: number) => dv.getUint32(o, true);
  const u64 = (o: number) => Number(dv.getBigUint64(o, true));
  const machine = u16(0x12);
  const phoff = u64(0x20);
  const phentsize = u16(0x36);
  const phnum = u16(0x38);

  const loads: { vaddr: number; offset: number; filesz: number }[] = [];
  let dyn: { offset: number; size: number } | undefined;
  for (let i = 0; i < phnum; i++) {
    const p = phoff + i * phentsize;
    const type = u32(p);
    if (type === PT_LOAD) loads.push({ offset: u64(p + 8), vaddr: u64(p + 16), filesz: u64(p + 32) });
    else if (type === PT_DYNAMIC) dyn = { offset: u64(p + 8), size: u64(p + 32) };
  }
  if (!dyn) return { machine, needed: [], searchPath: [], versionNeeds: {} };
  const toOffset = (vaddr: number) => {
    const seg = loads.find((l) => vaddr >= l.vaddr && vaddr < l.vaddr + l.filesz);
    if (!seg) throw new ElfError(`${label}: address 0x${vaddr.toString(16)} is in no loadable segment`);
    return vaddr - seg.vaddr + seg.offset;
  };

  const entries: [bigint, bigint][] = [];
  for (let o = dyn.offset; o + 16 <= dyn.offset + dyn.size; o += 16) {
    const tag = dv.getBigInt64(o, true);
    if (tag === DT_NULL) break;
    entries.push([tag, dv.getBigUint64(o + 8, true)]);
  }
  const one = (tag: bigint) => entries.find(([t]) => t === tag)?.[1];
  const strtabAddr = one(DT_STRTAB);
  if (strtabAddr === undefined) throw new ElfError(`${label}: dynamic section has no string table`);
  const strtab = toOffset(Number(strtabAddr));
  const strsz = Number(one(DT_STRSZ) ?? 0n);
  const str = (off: number) => {
    const start = strtab + off;
    let end = start;
    while (end < bytes.length && bytes[end] !== 0 && (strsz === 0 || end < strtab + strsz)) end++;
    return Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start).toString('latin1');
  };

  const needed = entries.filter(([t]) => t === DT_NEEDED).map(([, v]) => str(Number(v)));
  const sonameV = one(DT_SONAME);
  const runpath = one(DT_RUNPATH) ?? one(DT_RPATH);
  const searchPath = runpath === undefined ? [] : str(Number(runpath)).split(':').filter(Boolean);

  const versionNeeds: Record<string, string[]> = {};
  const verneed = one(DT_VERNEED);
  const verneedNum = Number(one(DT_VERNEEDNUM) ?? 0n);
  if (verneed !== undefined) {
    // Elf64_Verneed {vn_version u16, vn_cnt u16, vn_file u32, vn_aux u32, vn_next u32}
    // Elf64_Vernaux {vna_hash u32, vna_flags u16, vna_other u16, vna_name u32, vna_next u32}
    let vn = toOffset(Number(verneed));
    for (let i = 0; i < verneedNum; i++) {
      const file = str(u32(vn + 4));
      const cnt = u16(vn + 2);
      const names: string[] = [];
      let aux = vn + u32(vn + 8);
      for (let j = 0; j < cnt; j++) {
        names.push(str(u32(aux + 8)));
        const next = u32(aux + 12);
        if (next === 0) break;
        aux += next;
      }
      versionNeeds[file] = [...(versionNeeds[file] ?? []), ...names];
      const next = u32(vn + 12);
      if (next === 0) break;
      vn += next;
    }
  }
  return { machine, soname: sonameV === undefined ? undefined : str(Number(sonameV)), needed, searchPath, versionNeeds };
}

/** `GLIBC_2.28` → ['GLIBC', [2, 28]]. */
export function parseSymbolVersion(v: string): { family: string; version: number[] } | undefined {
  const m = /^([A-Z]+)_(\d+(?:\.\d+)*)$/.exec(v);
  return m ? { family: m[1], version: m[2].split('.').map(Number) } : undefined;
}

export function compareVersions(a: number[], b: number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}
