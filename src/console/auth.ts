/**
 * Who may change things. Reading is always allowed (the same data as /healthz and the status topics). Control
 * actions (capture, false reject, over HTTP or MQTT) need the console token whenever one is configured
 * (`Authorization: Bearer <console.token>`, or `"token"` in an MQTT command); with no token they are allowed only
 * while the server listens on loopback, and refused (read-only console) otherwise. docs/console.md, "Who may control".
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';

export type ControlMode = 'open' | 'token' | 'read-only';

export function isLoopback(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h === '::1') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (h.startsWith('::ffff:')) return h.slice(7).startsWith('127.');
  return false;
}

export function controlMode(host: string, token: string): ControlMode {
  if (token !== '') return 'token';
  return isLoopback(host) ? 'open' : 'read-only';
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

export class ControlGate {
  readonly mode: ControlMode;
  private readonly tokenDigest: Buffer | null;

  constructor(host: string, token: string) {
    this.mode = controlMode(host, token);
    this.tokenDigest = token === '' ? null : digest(token);
  }

  /**
   * The one control policy, for every way in (HTTP routes, MQTT commands): null = allowed; otherwise the HTTP
   * status and reason (never echoing what was sent). `token`: the credential the request carried, if any.
   */
  authorize(token: string | undefined, how = 'control actions need "Authorization: Bearer <console.token>"'): { status: number; message: string } | null {
    if (this.mode === 'open') return null;
    if (this.mode === 'read-only') {
      return { status: 403, message: 'console is read-only: it listens beyond loopback and console.token is not set' };
    }
    if (token === undefined || token === '') return { status: 401, message: how };
    // Equal-length digests: the comparison time says nothing about the token.
    if (!timingSafeEqual(digest(token), this.tokenDigest as Buffer)) return { status: 401, message: 'wrong console token' };
    return null;
  }

  /** HTTP: the Authorization header. */
  check(authorization: string | undefined): { status: number; message: string } | null {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    return this.authorize(m?.[1]);
  }
}
