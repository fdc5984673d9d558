// Loopback OSS server (path-style, V1 signatures verified, objects in memory) for local runs and tests.
// tsx scripts/oss-emulator.ts [--port 9100] [--host 127.0.0.1] [--bucket tiles-local]
//   [--access-key-id ID] [--access-key-secret SECRET] [--security-token TOKEN | --no-sts]
//   [--faults error:0.05,truncate:0.01,corrupt:0.01,slow:0.02[,slowMs:3000][,seed:N]] (default: $OSS_EMULATOR_FAULTS)
// Prints the endpoint, bucket and keys as environment assignments; stops on Ctrl-C.

import { parseArgs } from 'node:util';
import { FaultSpecError, parseFaultSpec } from '../src/emulators/oss-faults.ts';
import { startOssServer } from '../src/emulators/oss-server.ts';
import { runCli, UsageError } from '../src/cli/common.ts';
import { emulatorCredentials } from '../src/cloud/credentials.ts';

runCli(async () => {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: process.env.OSS_EMULATOR_PORT ?? '9100' },
      host: { type: 'string', default: '127.0.0.1' },
      bucket: { type: 'string', default: 'tiles-local' },
      'access-key-id': { type: 'string' },
      'access-key-secret': { type: 'string' },
      'security-token': { type: 'string' },
      'no-sts': { type: 'boolean', default: false },
      faults: { type: 'string', default: process.env.OSS_EMULATOR_FAULTS ?? '' },
    },
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be 0..65535, got ${values.port}`);
  const cred = emulatorCredentials({ sts: !values['no-sts'], accessKeyId: values['access-key-id'], accessKeySecret: values['access-key-secret'], securityToken: values['security-token'] });

  let faults;
  try {
    faults = parseFaultSpec(values.faults!);
  } catch (err) {
    if (err instanceof FaultSpecError) throw new UsageError(err.message);
    throw err;
  }
  let server;
  try {
    server = await startOssServer({ port, host: values.host, bucket: values.bucket!, credentials: [cred], faults });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new UsageError(`port ${port} is in use (try --port 0)`);
    if (err instanceof TypeError) throw new UsageError(err.message);
    throw err;
  }
  console.log(`OSS emulator listening (path-style: use ali-oss with endpoint + sldEnable: true)`);
  if (values.faults) console.log(`injecting random faults: ${JSON.stringify(faults)}`);
  console.log(`OSS_ENDPOINT=${server.endpoint}`);
  console.log(`OSS_BUCKET=${server.bucket}`);
  console.log(`ALIBABA_CLOUD_ACCESS_KEY_ID=${cred.accessKeyId}`);
  console.log(`ALIBABA_CLOUD_ACCESS_KEY_SECRET=${cred.accessKeySecret}`);
  if (cred.securityToken) console.log(`ALIBABA_CLOUD_SECURITY_TOKEN=${cred.securityToken}`);

  const stop = async () => {
    const st = server.stats();
    await server.close();
    console.log(`stopped after ${st.requests} requests (${st.objects} objects, ${st.storedBytes} bytes held; faults injected ${JSON.stringify(st.faults)})`);
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  await new Promise(() => undefined);
});
