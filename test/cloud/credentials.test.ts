import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  CachedCredentials, CredentialsError, ENV_ACCESS_KEY_ID, ENV_ACCESS_KEY_SECRET, ENV_SECURITY_TOKEN,
  checkCredentials, emulatorCredentials, envCredentials, expiresWithin, sameCredentials, staticCredentials,
  type Credentials, type CredentialsProvider,
} from '../../src/cloud/credentials.ts';

const isCredErr = (re: RegExp) => (e: unknown) => e instanceof CredentialsError && re.test((e as Error).message);

describe('envCredentials', () => {
  it('reads long-term keys (trimmed) without a token', async () => {
    const c = await envCredentials({ [ENV_ACCESS_KEY_ID]: ' LTAIabc ', [ENV_ACCESS_KEY_SECRET]: 'sec\n' }).get();
    assert.deepEqual(c, { accessKeyId: 'LTAIabc', accessKeySecret: 'sec' });
  });

  it('reads an STS token; a blank token counts as none', async () => {
    const base = { [ENV_ACCESS_KEY_ID]: 'STS.x', [ENV_ACCESS_KEY_SECRET]: 's' };
    assert.equal((await envCredentials({ ...base, [ENV_SECURITY_TOKEN]: 'CAIStok' }).get()).securityToken, 'CAIStok');
    assert.ok(!('securityToken' in (await envCredentials({ ...base, [ENV_SECURITY_TOKEN]: '  ' }).get())));
  });

  it('names every missing variable', async () => {
    await assert.rejects(envCredentials({}).get(), isCredErr(new RegExp(`${ENV_ACCESS_KEY_ID} and ${ENV_ACCESS_KEY_SECRET} not set`)));
    await assert.rejects(envCredentials({ [ENV_ACCESS_KEY_ID]: 'a' }).get(), (e: Error) => e instanceof CredentialsError && e.message.includes(ENV_ACCESS_KEY_SECRET) && !e.message.includes(`${ENV_ACCESS_KEY_ID} `));
    await assert.rejects(envCredentials({ [ENV_ACCESS_KEY_ID]: ' ', [ENV_ACCESS_KEY_SECRET]: 'b' }).get(), isCredErr(new RegExp(ENV_ACCESS_KEY_ID)));
  });

  it('re-reads the environment on every get (a rotated token is picked up)', async () => {
    const env: NodeJS.ProcessEnv = { [ENV_ACCESS_KEY_ID]: 'STS.a', [ENV_ACCESS_KEY_SECRET]: 's', [ENV_SECURITY_TOKEN]: 't1' };
    const p = envCredentials(env);
    assert.equal((await p.get()).securityToken, 't1');
    env[ENV_SECURITY_TOKEN] = 't2';
    assert.equal((await p.get()).securityToken, 't2');
  });
});

describe('checkCredentials / staticCredentials', () => {
  it('rejects non-objects and missing fields, naming the field and the source', () => {
    assert.throws(() => checkCredentials(null, 'src'), isCredErr(/src returned null/));
    assert.throws(() => checkCredentials({ accessKeySecret: 's' }, 'src'), isCredErr(/src: accessKeyId is missing/));
    assert.throws(() => checkCredentials({ accessKeyId: 'a', accessKeySecret: ' ' }), isCredErr(/accessKeySecret is missing/));
    assert.throws(() => checkCredentials({ accessKeyId: 'a', accessKeySecret: 's', securityToken: 5 }), isCredErr(/securityToken must be a string/));
    assert.throws(() => checkCredentials({ accessKeyId: 'a', accessKeySecret: 's', expiration: new Date('nope') }), isCredErr(/expiration must be a valid Date/));
    assert.throws(() => checkCredentials({ accessKeyId: 'a', accessKeySecret: 's', expiration: '2030-01-01' }), isCredErr(/expiration/));
  });

  it('normalizes: trims, drops a blank token, keeps the expiration', () => {
    const expiration = new Date(1e12);
    assert.deepEqual(checkCredentials({ accessKeyId: ' a ', accessKeySecret: ' s', securityToken: ' ', expiration }), { accessKeyId: 'a', accessKeySecret: 's', expiration });
  });

  it('staticCredentials validates at once and returns copies', async () => {
    assert.throws(() => staticCredentials({ accessKeyId: '', accessKeySecret: 's' }), isCredErr(/staticCredentials: accessKeyId/));
    const p = staticCredentials({ accessKeyId: 'a', accessKeySecret: 's' });
    const c1 = await p.get();
    c1.accessKeyId = 'mutated';
    assert.equal((await p.get()).accessKeyId, 'a');
  });

  it('expiresWithin and sameCredentials', () => {
    const now = 1_000_000;
    const c: Credentials = { accessKeyId: 'a', accessKeySecret: 's', expiration: new Date(now + 60_000) };
    assert.equal(expiresWithin(c, 59_999, now), false);
    assert.equal(expiresWithin(c, 60_000, now), true);
    assert.equal(expiresWithin({ accessKeyId: 'a', accessKeySecret: 's' }, 1e15, now), false);
    assert.ok(sameCredentials(c, { accessKeyId: 'a', accessKeySecret: 's', securityToken: '' }));
    assert.ok(!sameCredentials(c, { ...c, securityToken: 't' }));
  });

  it('emulatorCredentials: STS by default, long-term keys on request, overrides win', () => {
    const sts = emulatorCredentials();
    assert.match(sts.accessKeyId, /^STS\./);
    assert.match(sts.securityToken ?? '', /^CAIS/);
    const lt = emulatorCredentials({ sts: false });
    assert.match(lt.accessKeyId, /^LTAI/);
    assert.equal(lt.securityToken, undefined);
    assert.deepEqual(emulatorCredentials({ accessKeyId: 'k', accessKeySecret: 's', securityToken: 't' }), { accessKeyId: 'k', accessKeySecret: 's', securityToken: 't' });
    assert.notEqual(emulatorCredentials().accessKeySecret, emulatorCredentials().accessKeySecret);
  });
});

/** A provider handing out STS credentials that expire `ttlMs` after each read. */
function stsProvider(clock: { t: number }, ttlMs: number) {
  let n = 0;
  const p: CredentialsProvider & { reads: () => number } = {
    async get() {
      n++;
      return { accessKeyId: 'STS.k', accessKeySecret: 's', securityToken: `tok${n}`, expiration: new Date(clock.t + ttlMs) };
    },
    reads: () => n,
  };
  return p;
}

describe('CachedCredentials', () => {
  it('caches until the refresh margin, then re-reads before expiry', async () => {
    const clock = { t: 0 };
    const cc = new CachedCredentials(stsProvider(clock, 60 * 60_000), { refreshMarginMs: 5 * 60_000, now: () => clock.t });
    const first = await cc.get();
    assert.equal(first.securityToken, 'tok1');
    clock.t = 54 * 60_000;
    assert.equal(await cc.get(), first, 'same object while outside the margin');
    clock.t = 55 * 60_000; // exactly at the margin: refresh
    const second = await cc.get();
    assert.equal(second.securityToken, 'tok2');
    assert.ok(second.expiration!.getTime() > first.expiration!.getTime());
    assert.equal(cc.reads, 2);
  });

  it('never refreshes credentials without an expiration until invalidated', async () => {
    const clock = { t: 0 };
    let reads = 0;
    const cc = new CachedCredentials({ async get() { reads++; return { accessKeyId: 'a', accessKeySecret: 's' }; } }, { now: () => clock.t });
    await cc.get();
    clock.t = 1e12;
    await cc.get();
    assert.equal(reads, 1);
    cc.invalidate();
    await cc.get();
    assert.equal(reads, 2);
  });

  it('concurrent callers share one refresh', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    let reads = 0;
    const cc = new CachedCredentials({ async get() { reads++; await gate; return { accessKeyId: 'a', accessKeySecret: 's' }; } });
    const all = Promise.all([cc.get(), cc.get(), cc.get()]);
    release();
    const got = await all;
    assert.equal(reads, 1);
    assert.ok(got.every((c) => c === got[0]));
  });

  it('re-reads on every get when the provider keeps returning nearly-expired credentials', async () => {
    const clock = { t: 0 };
    const p = stsProvider(clock, 60_000);
    const cc = new CachedCredentials(p, { refreshMarginMs: 5 * 60_000, now: () => clock.t });
    await cc.get();
    await cc.get();
    assert.equal(p.reads(), 2);
  });

  it('a refresh started before invalidate() does not repopulate the cache', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    let n = 0;
    const cc = new CachedCredentials({ async get() { const i = ++n; if (i === 1) await gate; return { accessKeyId: `k${i}`, accessKeySecret: 's' }; } });
    const stale = cc.get();
    cc.invalidate();
    const fresh = await cc.get();
    release();
    assert.equal((await stale).accessKeyId, 'k1');
    assert.equal(fresh.accessKeyId, 'k2');
    assert.equal((await cc.get()).accessKeyId, 'k2');
  });

  it('wraps provider failures and rejects malformed credentials; the next get retries', async () => {
    let mode: 'throw' | 'bad' | 'ok' = 'throw';
    const cc = new CachedCredentials({
      async get() {
        if (mode === 'throw') throw new Error('metadata service down');
        if (mode === 'bad') return { accessKeyId: 'a' } as Credentials;
        return { accessKeyId: 'a', accessKeySecret: 's' };
      },
    });
    await assert.rejects(cc.get(), (e: Error) => e instanceof CredentialsError && /credentials provider failed: metadata service down/.test(e.message) && (e.cause as Error).message === 'metadata service down');
    mode = 'bad';
    await assert.rejects(cc.get(), isCredErr(/accessKeySecret is missing/));
    mode = 'ok';
    assert.equal((await cc.get()).accessKeyId, 'a');
  });

  it('passes a provider CredentialsError through unchanged, and rejects a provider without get()', async () => {
    const cc = new CachedCredentials(envCredentials({}));
    await assert.rejects(cc.get(), isCredErr(new RegExp(`^no Alibaba Cloud credentials: ${ENV_ACCESS_KEY_ID}`)));
    assert.throws(() => new CachedCredentials({} as CredentialsProvider), TypeError);
  });
});
