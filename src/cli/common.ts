import { readFile } from 'node:fs/promises';

/** Runs a CLI main: errors print one clear line (the typed error's message) and exit 1. */
export function runCli(main: () => Promise<number | void>): void {
  main().then(
    (code) => { process.exitCode = code ?? 0; },
    (err: unknown) => {
      const e = err as Error;
      console.error(`error: ${e?.name && e.name !== 'Error' ? `${e.name}: ` : ''}${e?.message ?? String(err)}`);
      if (process.env.DEBUG) console.error(e?.stack);
      process.exitCode = 1;
    },
  );
}

export class UsageError extends Error {
  override name = 'UsageError';
}

export async function readInput(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (cause) {
    throw new UsageError(`cannot read ${what} ${path}: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}`, { cause });
  }
}
