/**
 * OSS V1 request signing, as the emulator checks it: `Authorization: OSS <ak>:base64(HMAC-SHA1(secret,
 * stringToSign))`, a Date or x-oss-date within the allowed skew, and the STS token for temporary keys.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { header, OssHttpError, type RequestTarget } from './oss-protocol.ts';

export interface OssServerCredentials {
  accessKeyId: string;
  accessKeySecret: string;
  /** If set, requests with this AK must send it as `x-oss-security-token`. */
  securityToken?: string;
  /** If set, requests with this AK fail with 403 SecurityTokenExpired after this time. */
  expiration?: Date;
}

/**
 * Query parameters that are sub-resources, i.e. part of the V1 CanonicalizedResource
 * (OSS's list; `continuation-token` is one, which ali-oss >= 6.12 signs in listV2).
 * Ordinary query parameters (prefix, max-keys, list-type, ...) are not signed.
 */
const SIGNED_SUBRESOURCES = new Set([
  'acl', 'uploads', 'location', 'cors', 'logging', 'website', 'referer', 'lifecycle', 'delete', 'append',
  'tagging', 'objectMeta', 'uploadId', 'partNumber', 'security-token', 'position', 'img', 'style', 'styleName',
  'replication', 'replicationProgress', 'replicationLocation', 'cname', 'bucketInfo', 'comp', 'qos', 'live',
  'status', 'vod', 'startTime', 'endTime', 'symlink', 'x-oss-process', 'response-content-type',
  'response-content-language', 'response-expires', 'response-cache-control', 'response-content-disposition',
  'response-content-encoding', 'udf', 'udfName', 'udfImage', 'udfId', 'udfImageDesc', 'udfApplication',
  'udfApplicationLog', 'restore', 'callback', 'callback-var', 'policy', 'stat', 'encryption', 'versions',
  'versioning', 'versionId', 'continuation-token', 'worm', 'wormId', 'wormExtend', 'requestPayment',
  'inventory', 'inventoryId', 'x-oss-traffic-limit', 'sequential', 'resourceGroup', 'transferAcceleration',
]);

export function indexCredentials(list: OssServerCredentials[]): Map<string, OssServerCredentials> {
  if (!Array.isArray(list) || list.length === 0) throw new TypeError('OSS server: at least one credential is required');
  const map = new Map<string, OssServerCredentials>();
  for (const c of list) {
    if (!c?.accessKeyId || !c.accessKeySecret) throw new TypeError('OSS server: credentials need accessKeyId and accessKeySecret');
    map.set(c.accessKeyId, { ...c });
  }
  return map;
}

export interface SigningPolicy {
  credentials: Map<string, OssServerCredentials>;
  now: () => number;
  maxSkewMs: number;
}

/** Checks the request's V1 signature, token and date; returns the AccessKey ID it was signed with. */
export function authenticate(req: IncomingMessage, target: RequestTarget, policy: SigningPolicy): string {
  const { credentials, now, maxSkewMs } = policy;
  const auth = header(req, 'authorization');
  if (!auth) throw new OssHttpError(403, 'AccessDenied', 'You have no right to access this object because of bucket acl (anonymous access; no Authorization header).');
  if (auth.startsWith('OSS4-HMAC-SHA256')) {
    throw new OssHttpError(403, 'AccessDenied', 'V4 signatures are not supported by the OSS emulator; use V1 (ali-oss default).');
  }
  const m = /^OSS ([^:\s]+):(\S+)$/.exec(auth);
  if (!m) throw new OssHttpError(400, 'InvalidArgument', 'Authorization header is invalid.', { ArgumentName: 'Authorization', ArgumentValue: auth });
  const [, accessKeyId, signature] = m;
  const cred = credentials.get(accessKeyId);
  if (!cred) throw new OssHttpError(403, 'InvalidAccessKeyId', 'The OSS Access Key Id you provided does not exist in our records.', { OSSAccessKeyId: accessKeyId });

  const token = header(req, 'x-oss-security-token');
  if (cred.securityToken !== undefined) {
    if (token === undefined) throw new OssHttpError(403, 'InvalidSecurityToken', 'The security token you provided is missing (x-oss-security-token).', { OSSAccessKeyId: accessKeyId });
    if (!constantTimeEqual(token, cred.securityToken)) throw new OssHttpError(403, 'InvalidSecurityToken', 'The security token you provided is invalid.', { OSSAccessKeyId: accessKeyId });
    if (cred.expiration && cred.expiration.getTime() <= now()) {
      throw new OssHttpError(403, 'SecurityTokenExpired', `The security token you provided has expired (at ${cred.expiration.toISOString()}).`, { OSSAccessKeyId: accessKeyId });
    }
  } else if (token !== undefined) {
    throw new OssHttpError(403, 'InvalidSecurityToken', 'A security token was sent for a long-term AccessKey.', { OSSAccessKeyId: accessKeyId });
  }

  // ali-oss sends no Date header, only x-oss-date, and signs x-oss-date in the Date line.
  const dateHeader = header(req, 'date') ?? header(req, 'x-oss-date');
  if (!dateHeader) throw new OssHttpError(403, 'AccessDenied', 'Missing Date or x-oss-date header.');
  const t = Date.parse(dateHeader);
  if (Number.isNaN(t)) throw new OssHttpError(403, 'AccessDenied', `Invalid date ${JSON.stringify(dateHeader)}.`);
  if (Math.abs(now() - t) > maxSkewMs) {
    throw new OssHttpError(403, 'RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.', {
      RequestTime: dateHeader, ServerTime: new Date(now()).toUTCString(), MaxAllowedSkewMilliseconds: String(maxSkewMs),
    });
  }

  const stringToSign = canonicalString(req, dateHeader, target);
  const expected = createHmac('sha1', cred.accessKeySecret).update(Buffer.from(stringToSign, 'utf8')).digest('base64');
  if (!constantTimeEqual(signature, expected)) {
    throw new OssHttpError(403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.', {
      OSSAccessKeyId: accessKeyId, SignatureProvided: signature, StringToSign: stringToSign,
      StringToSignBytes: Buffer.from(stringToSign, 'utf8').toString('hex').replace(/(..)/g, '$1 ').trim(),
    });
  }
  return accessKeyId;
}

/** The V1 string to sign, as OSS (and ali-oss's signUtils.buildCanonicalString) build it. */
function canonicalString(req: IncomingMessage, dateLine: string, t: RequestTarget): string {
  const ossHeaders: string[] = [];
  for (const name of Object.keys(req.headers).sort()) {
    if (!name.startsWith('x-oss-')) continue;
    ossHeaders.push(`${name}:${String(header(req, name) ?? '').trim()}`);
  }
  let resource = `/${t.bucket}/${t.key}`;
  const subresources = [...new Set(t.params.filter((p) => SIGNED_SUBRESOURCES.has(p)))].sort();
  if (subresources.length) {
    resource += `?${subresources.map((p) => (t.query.get(p) ? `${p}=${t.query.get(p)}` : p)).join('&')}`;
  }
  return [
    (req.method ?? '').toUpperCase(),
    header(req, 'content-md5') ?? '',
    header(req, 'content-type') ?? '',
    dateLine,
    ...ossHeaders,
    resource,
  ].join('\n');
}

function constantTimeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}
