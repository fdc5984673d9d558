// npm start [-- --port 9001 --worker-max-instances 8 ...]: the local stack on 127.0.0.1:9000 serving
// ResNet-18. Every setting of src/config.ts is an environment variable or the matching flag.
import { loadConfig } from '../src/config.ts';
import { startLocalStack, withEmulatorDefaults } from '../src/serve/stack.ts';
import { runCli } from '../src/cli/common.ts';
import { envFromArgs } from '../src/cli/config-args.ts';

runCli(async () => {
  // Flags override the environment; function processes inherit the result.
  Object.assign(process.env, envFromArgs(process.argv.slice(2)));
  const config = loadConfig(withEmulatorDefaults(process.env));
  const t0 = performance.now();
  const stack = await startLocalStack(config);
  const names = stack.registry.models.map((m) => m.name).join(', ');
  console.log(`ready: ${stack.url} serving ${names} (store: ${config.store === 'oss' ? `OSS via ali-oss${config.oss?.endpoint ? '' : ' on a loopback OSS server'}` : `${config.dataDir}/store`}; functions: ${config.invoker === 'fc' ? 'FC API via @alicloud/fc20230330 on a loopback FC server' : 'local processes'}) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  console.log(`try:   curl -s -X POST --data-binary @photo.jpg -H 'content-type: image/jpeg' ${stack.url}/v2/models/${config.model}/infer`);
  console.log(`  or:  npm run infer -- --model ${config.model} --random`);
  const stop = async () => { await stack.close(); process.exit(0); };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  await new Promise(() => undefined);
});
