// npm run calibrate (also reachable as npm run bench -- --calibrate): measures this machine and
// writes profiles/local.json, the cost model's profile of the local stack (docs/cost-model.md).
import { createWriteStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { calibrateLocal } from '../src/calibrate/calibrate.ts';
import { runCli } from '../src/cli/common.ts';

/**
 * The stack's function instances log every request (the pool forwards them to stderr as
 * `[<instance id>] line`); they go to a file so that the calibration's own lines stay readable.
 */
function divertInstanceLogs(file: string): () => Promise<number> {
  const out = createWriteStream(file);
  const write = process.stderr.write.bind(process.stderr);
  const INSTANCE_LINE = /^\[[A-Za-z_][\w-]*-\d+-[0-9a-f]{8}\] /;
  let lines = 0;
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    if (!INSTANCE_LINE.test(text)) return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
    lines += text.split('\n').filter(Boolean).length;
    out.write(text);
    (rest.find((r) => typeof r === 'function') as (() => void) | undefined)?.();
    return true;
  }) as typeof process.stderr.write;
  return async () => {
    process.stderr.write = write;
    await new Promise<void>((r) => out.end(r));
    return lines;
  };
}

runCli(async () => {
  const logFile = join(tmpdir(), `calibrate-functions-${process.pid}.log`);
  const restore = divertInstanceLogs(logFile);
  let profile;
  try {
    profile = await calibrateLocal((s) => console.log(s));
  } finally {
    const n = await restore();
    if (n) console.error(`${n} function log lines in ${logFile}`);
  }
  await writeFile('profiles/local.json', `${JSON.stringify(profile, null, 2)}\n`);
  console.log(JSON.stringify(profile));
});
