import { ConfigError } from '../config.ts';
import { configEnvKeys } from '../deploy/env-keys.ts';

/**
 * Command-line flags for the configuration: `--worker-max-instances 8` (or `=8`) sets
 * WORKER_MAX_INSTANCES. Every flag maps onto a variable of the one zod config, so flags and the
 * environment are validated alike; a flag naming no setting is an error.
 */
export function envFromArgs(argv: string[]): Record<string, string> {
  const keys = configEnvKeys();
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z][a-z0-9-]*)(?:=(.*))?$/.exec(argv[i]);
    if (!m) throw new ConfigError(`unexpected argument "${argv[i]}": settings are --name value (e.g. --port 9001)`);
    const name = m[1].toUpperCase().replace(/-/g, '_');
    if (!keys.has(name)) throw new ConfigError(`unknown flag --${m[1]}: there is no setting ${name}`);
    const value = m[2] ?? argv[++i];
    if (value === undefined) throw new ConfigError(`flag --${m[1]} needs a value`);
    out[name] = value;
  }
  return out;
}
