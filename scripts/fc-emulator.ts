// Loopback Function Compute server for local runs and tests: FC 3.0's InvokeFunction (ACS3-HMAC-SHA256
// verified) and FC 2.0's (`FC <ak>:<signature>` verified) on one port; every function instance a
// local Node process.
// tsx scripts/fc-emulator.ts --fn NAME=ENTRY[:MAX_INSTANCES[:TIMEOUT_MS]] [--fn ...]
//   [--port 9200] [--host 127.0.0.1] [--account-id ID] [--region REGION]
//   [--access-key-id ID] [--access-key-secret SECRET] [--security-token TOKEN | --no-sts]
//   [--invoker fc|fc2] [--service NAME] [--faults throttle:0.05,crash:0.01]
// --invoker picks the SDK the functions' own invocations use; --service puts every function in
// that FC 2.0 service (default: any service name is accepted); --faults (default
// $FC_EMULATOR_FAULTS) injects throttling and instance kills.
// Prints the endpoint and keys as environment assignments (what an FcInvoker/Fc2Invoker client
// needs, and what the functions themselves get); stops on Ctrl-C.

import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { runCli, UsageError } from '../src/cli/common.ts';
import { fcFunctionEnv, startFcServer } from '../src/emulators/fc-server.ts';
import type { LocalFunctionConfig } from '../src/invoke/process-pool.ts';
import { emulatorCredentials } from '../src/cloud/credentials.ts';

runCli(async () => {
  const { values } = parseArgs({
    options: {
      fn: { type: 'string', multiple: true, default: [] },
      port: { type: 'string', default: process.env.FC_EMULATOR_PORT ?? '9200' },
      host: { type: 'string', default: '127.0.0.1' },
      'account-id': { type: 'string', default: '1234567890123456' },
      region: { type: 'string', default: 'cn-hangzhou' },
      'access-key-id': { type: 'string' },
      'access-key-secret': { type: 'string' },
      'security-token': { type: 'string' },
      'no-sts': { type: 'boolean', default: false },
      invoker: { type: 'string', default: 'fc' },
      service: { type: 'string' },
      faults: { type: 'string', default: process.env.FC_EMULATOR_FAULTS ?? '' },
    },
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be 0..65535, got ${values.port}`);
  const functions: Record<string, LocalFunctionConfig> = {};
  for (const spec of values.fn ?? []) {
    const m = /^([A-Za-z_][A-Za-z0-9_-]{0,63})=([^:]+)(?::(\d+))?(?::(\d+))?$/.exec(spec);
    if (!m) throw new UsageError(`--fn ${spec}: expected NAME=ENTRY[:MAX_INSTANCES[:TIMEOUT_MS]]`);
    functions[m[1]] = { entry: resolve(m[2]), maxInstances: Number(m[3] ?? 4), timeoutMs: Number(m[4] ?? 120_000) };
  }
  if (Object.keys(functions).length === 0) throw new UsageError('give at least one --fn NAME=ENTRY');
  const cred = emulatorCredentials({ sts: !values['no-sts'], accessKeyId: values['access-key-id'], accessKeySecret: values['access-key-secret'], securityToken: values['security-token'] });

  const invoker = values.invoker;
  if (invoker !== 'fc' && invoker !== 'fc2') throw new UsageError(`--invoker must be fc or fc2, got ${invoker}`);
  const service = values.service;
  if (service !== undefined && !/^[A-Za-z_][A-Za-z0-9_-]{0,127}$/.test(service)) throw new UsageError(`--service ${service}: not an FC 2.0 service name`);
  const fc2Services = service === undefined ? undefined : Object.fromEntries(Object.keys(functions).map((f) => [f, service]));

  let server;
  try {
    server = await startFcServer({
      port, host: values.host, accountId: values['account-id']!, region: values.region!, credentials: [cred], functions,
      functionInvoker: invoker, faults: values.faults ?? '', ...(fc2Services ? { fc2Services } : {}),
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new UsageError(`port ${port} is in use (try --port 0)`);
    if (err instanceof TypeError) throw new UsageError(err.message);
    throw err;
  }
  console.log(`FC emulator (2023-03-30 and 2016-08-15 APIs) listening; functions: ${Object.keys(functions).join(', ')}`);
  for (const [k, v] of Object.entries(fcFunctionEnv({ endpoint: server.endpoint, accountId: server.accountId, region: server.region, credential: cred, invoker }))) {
    if (!k.startsWith('FC_')) console.log(`${k}=${v}`);
  }
  if (service !== undefined) console.log(`FC2_SERVICE=${service}`);

  const stop = async () => {
    await server.close();
    console.log('stopped');
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  await new Promise(() => undefined);
});
