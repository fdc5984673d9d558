// npm run calibrate (also reachable as npm run bench -- --calibrate): measures this machine and
// writes profiles/local.json, the cost model's profile of the local stack.
import { writeFile } from 'node:fs/promises';
import { calibrateLocal } from '../src/cost/calibrate.ts';
import { runCli } from '../src/cli/common.ts';

runCli(async () => {
  const profile = await calibrateLocal((s) => console.log(s));
  await writeFile('profiles/local.json', `${JSON.stringify(profile, null, 2)}\n`);
  console.log(JSON.stringify(profile));
});
