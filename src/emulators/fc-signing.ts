/**
 * FC request signing, as the emulator checks it: FC 3.0's ACS3-HMAC-SHA256 (as
 * `@alicloud/openapi-core` signs) and FC 2.0's `FC <ak>:<signature>` (as `@alicloud/fc2` signs).
 * The module comment of fc-server.ts spells out both canonical forms.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type http from 'node:http';
import { FcApiError } from './fc-failures.ts';

export interface FcServerCredential {
  accessKeyId: string;
  accessKeySecret: string;
  /** Set for STS credentials: requests must then carry this `x-acs-security-token`. */
  securityToken?: string;
}

const SIGNATURE_ALGORITHM = 'ACS3-HMAC-SHA256';

/** The FC 2.0 string to sign (see the module comment; @alicloud/fc2's helper.composeStringToSign). */
export function fc2StringToSign(p: { method: string; path: string; headers: Record<string, string> }): string {
  const h = p.headers;
  const fcHeaders = Object.keys(h).filter((k) => k.startsWith('x-fc-')).sort().map((k) => `${k}:${h[k]}\n`).join('');
  return `${p.method}\n${h['content-md5'] ?? ''}\n${h['content-type'] ?? ''}\n${h.date ?? ''}\n${fcHeaders}${p.path}`;
}

/** base64(HMAC-SHA256(secret, stringToSign)), as `FC <ak>:<this>`. */
export function fc2Signature(secret: string, stringToSign: string): string {
  return createHmac('sha256', secret).update(stringToSign, 'utf8').digest('base64');
}

/** FC 2.0's content-md5 as @alicloud/fc2 computes it: base64 of the hex digest. */
export function fc2ContentMd5(body: Buffer): string {
  return Buffer.from(createHash('md5').update(body).digest('hex'), 'utf8').toString('base64');
}

/** ACS3 `encode`: encodeURIComponent plus !'()* (as openapi-core signs query values). */
export function acsEncode(s: string): string {
  return encodeURIComponent(s).replace(/!/g, '%21').replace(/'/g, '%27').replace(/\(/g, '%28').replace(/\)/g, '%29').replace(/\*/g, '%2A');
}

/**
 * The ACS3 canonical request for the given parts (see the module comment). `headers` maps
 * lowercase names to their values (already joined if repeated); `signedHeaders` is the list from
 * the Authorization header.
 */
export function acs3CanonicalRequest(p: {
  method: string;
  rawPath: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  signedHeaders: string[];
  contentSha256: string;
}): string {
  const uri = p.rawPath.replace(/\+/g, '%20').replace(/\*/g, '%2A').replace(/%7E/g, '~');
  const query = Object.keys(p.query).sort().map((k) => `${k}=${acsEncode(p.query[k])}`).join('&');
  const headers = p.signedHeaders.map((h) => `${h}:${(p.headers[h] ?? '').trim()}\n`).join('');
  return `${p.method}\n${uri}\n${query}\n${headers}\n${p.signedHeaders.join(';')}\n${p.contentSha256}`;
}

/** hex(HMAC-SHA256(secret, "ACS3-HMAC-SHA256\n" + hex(sha256(canonicalRequest)))) */
export function acs3Signature(secret: string, canonicalRequest: string): string {
  const stringToSign = `${SIGNATURE_ALGORITHM}\n${createHash('sha256').update(canonicalRequest).digest('hex')}`;
  return createHmac('sha256', secret).update(stringToSign).digest('hex');
}

/** Verifies requests against the accepted credentials; remembers ACS3 nonces to refuse replays. */
export class FcRequestVerifier {
  private readonly keys = new Map<string, FcServerCredential>();
  private readonly nonces = new Map<string, number>(); // nonce → expiry (ms)

  constructor(credentials: FcServerCredential[], private readonly accountId: string, private readonly maxSkewMs: number) {
    for (const c of credentials) {
      if (!c.accessKeyId || !c.accessKeySecret) throw new TypeError('startFcServer: credentials need accessKeyId and accessKeySecret');
      this.keys.set(c.accessKeyId, c);
    }
  }

  /** Check the FC 2.0 `FC <ak>:<signature>` header and related headers; returns the access key ID. */
  verifyFc2(req: http.IncomingMessage, rawPath: string, body: Buffer | undefined, size: number): string {
    const auth = header(req, 'authorization');
    if (!auth) throw new FcApiError(403, 'MissingAuthorization', 'the request carries no Authorization header');
    const am = /^FC ([^:\s]+):([A-Za-z0-9+/]+={0,2})$/.exec(auth.trim());
    if (!am) throw new FcApiError(403, 'InvalidAuthorization', 'malformed Authorization header (expected FC <accessKeyID>:<signature>)');
    const [, accessKeyId, signature] = am;
    const cred = this.keys.get(accessKeyId);
    if (!cred) throw new FcApiError(403, 'InvalidAccessKeyId', `invalid access key ID '${accessKeyId}'`);

    const token = header(req, 'x-fc-security-token');
    if (cred.securityToken !== undefined) {
      if (token === undefined) throw new FcApiError(403, 'InvalidSecurityToken', `access key '${accessKeyId}' is an STS key: x-fc-security-token is missing`);
      if (!safeEqual(token, cred.securityToken)) throw new FcApiError(403, 'InvalidSecurityToken', 'the security token is invalid or expired');
    } else if (token !== undefined) {
      throw new FcApiError(403, 'InvalidSecurityToken', `access key '${accessKeyId}' is not an STS key but a security token was sent`);
    }
    const account = header(req, 'x-fc-account-id');
    if (account !== undefined && account !== this.accountId) {
      throw new FcApiError(403, 'AccessDenied', `x-fc-account-id ${account} is not this endpoint's account`);
    }
    const date = header(req, 'date');
    if (!date) throw new FcApiError(400, 'MissingRequiredHeader', 'required HTTP header date was not specified');
    const t = Date.parse(date);
    if (Number.isNaN(t)) throw new FcApiError(400, 'InvalidArgument', `date ${JSON.stringify(date)} is not an HTTP date`);
    if (Math.abs(Date.now() - t) > this.maxSkewMs) {
      throw new FcApiError(403, 'RequestTimeTooSkewed', `date ${date} differs from the server time by more than ${Math.round(this.maxSkewMs / 60_000)} minutes`);
    }
    const md5 = header(req, 'content-md5');
    if (size > 0 && md5 === undefined) throw new FcApiError(400, 'MissingRequiredHeader', 'a request with a body must carry content-md5');
    const headers: Record<string, string> = {};
    for (const [name, values] of Object.entries(req.headersDistinct)) if (values) headers[name] = values.join(',');
    const expected = fc2Signature(cred.accessKeySecret, fc2StringToSign({ method: req.method ?? 'POST', path: rawPath, headers }));
    if (!safeEqual(expected, signature)) {
      throw new FcApiError(403, 'SignatureNotMatch', 'The request signature we calculated does not match the signature you provided. Check your access key and signing method');
    }
    // The signature covers content-md5; the body is bound to it here (it may have been over the limit).
    if (body !== undefined && md5 !== undefined && md5 !== fc2ContentMd5(body)) {
      throw new FcApiError(403, 'SignatureNotMatch', `content-md5 does not match the request body (${size} bytes)`);
    }
    return accessKeyId;
  }

  /** Check the ACS3-HMAC-SHA256 signature and related headers; returns the access key ID. */
  verifyAcs3(
    req: http.IncomingMessage,
    rawPath: string,
    query: Record<string, string>,
    body: Buffer | undefined,
    size: number,
  ): string {
    const auth = header(req, 'authorization');
    if (!auth) throw new FcApiError(403, 'MissingAuthorization', 'the request carries no Authorization header');
    const am = /^(\S+) Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-fA-F]+)$/.exec(auth.trim());
    if (!am) throw new FcApiError(403, 'IncompleteSignature', 'malformed Authorization header (expected ACS3-HMAC-SHA256 Credential=…,SignedHeaders=…,Signature=…)');
    const [, algorithm, accessKeyId, signedList, signature] = am;
    if (algorithm !== SIGNATURE_ALGORITHM) {
      throw new FcApiError(403, 'SignatureNotMatch', `unsupported signature algorithm ${algorithm} (the emulator verifies ${SIGNATURE_ALGORITHM})`);
    }
    const cred = this.keys.get(accessKeyId);
    if (!cred) throw new FcApiError(403, 'InvalidAccessKeyId', `invalid access key ID '${accessKeyId}'`);

    const token = header(req, 'x-acs-security-token');
    if (cred.securityToken !== undefined) {
      if (token === undefined) throw new FcApiError(403, 'InvalidSecurityToken', `access key '${accessKeyId}' is an STS key: x-acs-security-token is missing`);
      if (!safeEqual(token, cred.securityToken)) throw new FcApiError(403, 'InvalidSecurityToken', 'the security token is invalid or expired');
    } else if (token !== undefined) {
      throw new FcApiError(403, 'InvalidSecurityToken', `access key '${accessKeyId}' is not an STS key but a security token was sent`);
    }
    const akHeader = header(req, 'x-acs-accesskey-id');
    if (akHeader !== undefined && akHeader !== accessKeyId) {
      throw new FcApiError(403, 'SignatureNotMatch', 'x-acs-accesskey-id does not match the Authorization credential');
    }

    const date = header(req, 'x-acs-date');
    if (!date) throw new FcApiError(400, 'MissingRequiredHeader', 'required HTTP header x-acs-date was not specified');
    const t = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(date) ? Date.parse(date) : NaN;
    if (Number.isNaN(t)) throw new FcApiError(400, 'InvalidArgument', `x-acs-date ${JSON.stringify(date)} is not yyyy-MM-ddTHH:mm:ssZ`);
    if (Math.abs(Date.now() - t) > this.maxSkewMs) {
      throw new FcApiError(403, 'RequestTimeTooSkewed', `x-acs-date ${date} differs from the server time by more than ${Math.round(this.maxSkewMs / 60_000)} minutes`);
    }
    const nonce = header(req, 'x-acs-signature-nonce');
    if (!nonce) throw new FcApiError(400, 'MissingRequiredHeader', 'required HTTP header x-acs-signature-nonce was not specified');
    const contentSha = header(req, 'x-acs-content-sha256');
    if (!contentSha) throw new FcApiError(400, 'MissingRequiredHeader', 'required HTTP header x-acs-content-sha256 was not specified');

    const signedHeaders = signedList.split(';');
    const signedSet = new Set(signedHeaders);
    for (const name of ['host', 'x-acs-date', 'x-acs-signature-nonce', 'x-acs-content-sha256']) {
      if (!signedSet.has(name)) throw new FcApiError(403, 'SignatureNotMatch', `header ${name} must be signed`);
    }
    for (const name of Object.keys(req.headers)) {
      if ((name === 'content-type' || name.startsWith('x-acs-')) && !signedSet.has(name)) {
        throw new FcApiError(403, 'SignatureNotMatch', `header ${name} is present but not signed`);
      }
    }
    // Only now that the request is authentic-looking do we look at the body (it may have been over the limit).
    if (body !== undefined) {
      const actual = createHash('sha256').update(body).digest('hex');
      if (actual !== contentSha.toLowerCase()) {
        throw new FcApiError(403, 'SignatureNotMatch', `x-acs-content-sha256 does not match the request body (${size} bytes)`);
      }
    }
    const headers: Record<string, string> = {};
    for (const name of signedHeaders) {
      const values = req.headersDistinct[name];
      headers[name] = values ? values.map((v) => v.trim()).sort().join(',') : '';
    }
    const canonical = acs3CanonicalRequest({
      method: req.method ?? 'POST',
      rawPath,
      query,
      headers,
      signedHeaders,
      contentSha256: contentSha,
    });
    const expected = acs3Signature(cred.accessKeySecret, canonical);
    if (!safeEqual(expected, signature.toLowerCase())) {
      throw new FcApiError(403, 'SignatureNotMatch', 'The request signature we calculated does not match the signature you provided. Check your access key and signing method');
    }
    // Replay protection: a nonce is good once within the skew window.
    const now = Date.now();
    if (this.nonces.size > 10_000) for (const [k, exp] of this.nonces) if (exp < now) this.nonces.delete(k);
    const seen = this.nonces.get(nonce);
    if (seen !== undefined && seen >= now) throw new FcApiError(403, 'SignatureNonceUsed', `signature nonce ${nonce} was already used`);
    this.nonces.set(nonce, now + 2 * this.maxSkewMs);
    return accessKeyId;
  }
}

export function header(req: http.IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(',') : v;
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
