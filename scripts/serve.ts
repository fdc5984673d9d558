// npm start [-- --port 9001 --model my.onnx,resnet18 --model-repository models/ ...]: the local stack on
// 127.0.0.1:9000, serving resnet18 (random weights: a stand-in for benchmarks) and ppocr-det
// (PP-OCRv4 text detection) unless MODEL says otherwise. Every setting of src/config.ts is an
// environment variable or the matching flag.
import { loadConfig } from '../src/config.ts';
import { startLocalStack, withEmulatorDefaults } from '../src/compose/stack.ts';
import { runCli } from '../src/cli/common.ts';
import { envFromArgs } from '../src/cli/config-args.ts';

/** What `npm start` serves when neither MODEL nor --model is given. */
const DEFAULT_MODELS = 'resnet18,ppocr-det';

runCli(async () => {
  // Flags override the environment; function processes inherit the result.
  Object.assign(process.env, envFromArgs(process.argv.slice(2)));
  process.env.MODEL ??= DEFAULT_MODELS;
  const config = loadConfig(withEmulatorDefaults(process.env));
  const t0 = performance.now();
  const stack = await startLocalStack(config);
  const names = stack.registry.models.map((m) => m.name).join(', ');
  console.log(`ready: ${stack.url} serving ${names} (store: ${config.store === 'oss' ? `OSS via ali-oss${config.oss?.endpoint ? '' : ' on a loopback OSS server'}` : `${config.dataDir}/store`}; functions: ${config.invoker === 'fc' ? 'FC API via @alicloud/fc20230330 on a loopback FC server' : 'local processes'}) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const served = new Set(stack.registry.models.map((m) => m.name));
  const first = stack.registry.models[0]?.name ?? config.model;
  console.log(`try:   npm run infer -- --model ${first} --random`);
  if (served.has('ppocr-det')) console.log(`       npm run infer -- --model ppocr-det --image page.png   (boxes, and page.boxes.png with them drawn)`);
  const stop = async () => { await stack.close(); process.exit(0); };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  await new Promise(() => undefined);
});
