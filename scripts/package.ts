// npm run package [-- --minify] [--out <dir>]
// Bundles the three FC functions into dist/code, adds a linux-x64 node_modules for the native
// packages, zips it to dist/code.zip, prints sizes against FC's limits; exits 1 if any is exceeded.
import { parseArgs } from 'node:util';
import { runCli } from '../src/cli/common.ts';
import { formatReport, packageFunctions } from '../src/deploy/package.ts';

runCli(async () => {
  const { values } = parseArgs({ options: { minify: { type: 'boolean' }, out: { type: 'string' } } });
  const report = await packageFunctions({ outDir: values.out, minify: values.minify, log: (l) => console.log(`> ${l}`) });
  for (const line of formatReport(report)) console.log(line);
  return report.ok ? 0 : 1;
});
