/** Checks on the built package: native files that fit the FC runtime, and the code-size limits. */
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { compareVersions, isElf, parseSymbolVersion, readElf } from './elf.ts';
import { listFiles, type ZipSummary } from './zip.ts';
import { readHead } from './node-modules.ts';
import { FC_NODEJS20, FC_LIMITS, type NativeFile, type LimitCheck } from './package-layout.ts';

/**
 * Every ELF file in the package: x86-64, each needed library either a Debian 10 system library
 * (with symbol versions no newer than glibc 2.28 / GCC 8) or present in the package where the
 * file's RUNPATH/RPATH ($ORIGIN-relative) points. This is the `ldd` check, done statically.
 */
export async function checkNativeFiles(codeDir: string): Promise<{ natives: NativeFile[]; problems: string[] }> {
  const natives: NativeFile[] = [];
  const problems: string[] = [];
  for (const rel of await listFiles(codeDir)) {
    const abs = join(codeDir, rel);
    if (!isElf(await readHead(abs, 4))) continue;
    let info;
    try {
      info = readElf(await readFile(abs), rel);
    } catch (e) {
      problems.push(`${rel}: ${(e as Error).message}`);
      continue;
    }
    if (info.machine !== FC_NODEJS20.machine) {
      problems.push(`${rel}: machine ${info.machine}, not x86-64: the package must carry linux-x64 binaries`);
      continue;
    }
    const origin = dirname(abs);
    const dirs = info.searchPath.map((p) => resolve(p.replace(/\$\{?ORIGIN\}?/g, origin)));
    for (const lib of info.needed) {
      if (FC_NODEJS20.systemLibraries.includes(lib)) continue;
      const hit = dirs.find((d) => (d === codeDir || d.startsWith(codeDir + sep)) && existsSync(join(d, lib)));
      if (!hit) problems.push(`${rel} needs ${lib}, which is neither a system library nor found in the package (search path: ${info.searchPath.join(':') || 'none'})`);
    }
    const maxVersions: Record<string, string> = {};
    for (const [lib, versions] of Object.entries(info.versionNeeds)) {
      if (!FC_NODEJS20.systemLibraries.includes(lib)) continue;
      for (const v of versions) {
        const p = parseSymbolVersion(v);
        if (!p || !(p.family in FC_NODEJS20.maxVersions)) continue;
        const cur = maxVersions[p.family] ? parseSymbolVersion(maxVersions[p.family])!.version : undefined;
        if (!cur || compareVersions(p.version, cur) > 0) maxVersions[p.family] = v;
        if (compareVersions(p.version, FC_NODEJS20.maxVersions[p.family]) > 0) {
          problems.push(`${rel} needs ${v} from ${lib}; FC's nodejs20 runtime (Debian 10) has ${p.family}_${FC_NODEJS20.maxVersions[p.family].join('.')}`);
        }
      }
    }
    natives.push({ path: rel, needed: info.needed, maxVersions });
  }
  return { natives, problems };
}

export function checkLimits(code: ZipSummary): LimitCheck[] {
  const base64 = 4 * Math.ceil(code.zippedBytes / 3);
  return [
    { what: 'code zip, via OSS / Serverless Devs', bytes: code.zippedBytes, limit: FC_LIMITS.codeZipViaOss, ok: code.zippedBytes <= FC_LIMITS.codeZipViaOss },
    { what: 'code zip, via API (base64)', bytes: base64, limit: FC_LIMITS.codeZipViaApiBase64, ok: base64 <= FC_LIMITS.codeZipViaApiBase64 },
    { what: 'code unzipped (our budget)', bytes: code.unzippedBytes, limit: FC_LIMITS.unzippedBudget, ok: code.unzippedBytes <= FC_LIMITS.unzippedBudget },
  ];
}
