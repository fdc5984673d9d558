/**
 * Generate a deterministic reference CNN as an ONNX file.
 *
 *   npm run make-model -- --arch resnet18 --out models/resnet18.onnx [--seed N] [--opset N] [--num-classes N]
 */
import { parseArgs } from 'node:util';
import { ARCHS, buildModel, isArch, sha256Hex, writeModelFile } from '../src/models/index.ts';

function intArg(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got ${v}`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      arch: { type: 'string' },
      out: { type: 'string' },
      seed: { type: 'string' },
      opset: { type: 'string' },
      'num-classes': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  const usage = `usage: make-model --arch <${ARCHS.join('|')}> --out <file.onnx> [--seed N] [--opset N] [--num-classes N]`;
  if (values.help) {
    console.log(usage);
    return;
  }
  const arch = values.arch;
  if (!arch || !isArch(arch)) throw new Error(`--arch must be one of ${ARCHS.join(', ')}\n${usage}`);
  const out = values.out ?? `models/${arch}.onnx`;
  const seed = intArg('seed', values.seed, 0);
  const opset = intArg('opset', values.opset, 13);
  const numClasses = intArg('num-classes', values['num-classes'], 1000);

  const bytes = buildModel(arch, { seed, opset, numClasses });
  await writeModelFile(out, bytes);
  console.log(`${out}\t${bytes.byteLength} bytes\tsha256 ${sha256Hex(bytes)}`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
