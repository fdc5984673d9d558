// npm run calibrate (also reachable as npm run bench -- --calibrate): measures this machine and
// writes profiles/local.json, the cost model's profile of the local stack (docs/cost-model.md).
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { calibrateLocal } from '../src/calibrate/calibrate.ts';
import { runCli } from '../src/cli/common.ts';
import { captureInstanceLogs } from '../src/bench/output.ts';

runCli(async () => {
  const logFile = join(tmpdir(), `calibrate-functions-${process.pid}.log`);
  const restore = captureInstanceLogs(logFile);
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
