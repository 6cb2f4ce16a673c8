/**
 * Which Host and Origin the console answers to. A page on another site can make a browser send requests to the
 * console through a DNS name it rebinds to 127.0.0.1 or a LAN address (DNS rebinding); the browser then sends that
 * name as Host. So the console answers only to the address the connection arrived at (the bound address), the
 * loopback names when it arrived on loopback, the machine's own host name on a wildcard bind, and the names listed
 * in console.allowedHosts; and the port must be the one it listens on. State-changing requests that carry an Origin
 * must come from a page served under one of those names. docs/console.md, "Host and Origin checks".
 */
import type { IncomingMessage } from 'node:http';
import { hostname as osHostname } from 'node:os';
import { isIP } from 'node:net';
import { isLoopback } from './auth';

interface HostPort {
  host: string;
  /** null = not given (the scheme's default). */
  port: number | null;
}

const WILDCARDS = new Set(['', '0.0.0.0', '::', '[::]']);

/** "Name:port" / "[v6]:port" / "name" -> lower-case host without brackets and the port; null if unparsable. */
export function parseHostPort(s: string): HostPort | null {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]/@\s]+)(?::([0-9]{1,5}))?$/.exec(s.trim());
  if (!m) return null;
  const host = m[1].replace(/^\[|\]$/g, '').toLowerCase().replace(/\.$/, '');
  const port = m[2] === undefined ? null : Number(m[2]);
  if (host === '' || (port !== null && port > 65535)) return null;
  return { host, port };
}

function plainAddress(a: string | undefined): string {
  const s = (a ?? '').toLowerCase();
  return s.startsWith('::ffff:') && isIP(s.slice(7)) === 4 ? s.slice(7) : s;
}

export class HostCheck {
  private readonly extra: HostPort[];
  private readonly bound: string;

  constructor(boundHost: string, allowedHosts: readonly string[] = []) {
    this.bound = boundHost.trim().toLowerCase().replace(/^\[|\]$/g, '');
    this.extra = allowedHosts.map((h) => {
      const p = parseHostPort(h);
      if (!p) throw new Error(`console.allowedHosts: "${h}" is not a host name or host:port`);
      return p;
    });
  }

  /** Whether `value` (a Host header, or an Origin's host part) names this console for a connection on local addr/port. */
  allows(value: string, localAddress: string | undefined, localPort: number | undefined, defaultPort = 80): boolean {
    const hp = parseHostPort(value);
    if (!hp) return false;
    if (this.extra.some((e) => e.host === hp.host && (e.port === null || e.port === (hp.port ?? defaultPort)))) return true;
    if ((hp.port ?? defaultPort) !== localPort) return false;
    const local = plainAddress(localAddress);
    if (hp.host === local) return true;
    if (isLoopback(local) && isLoopback(hp.host)) return true;
    if (WILDCARDS.has(this.bound)) return hp.host === osHostname().toLowerCase();
    return hp.host === this.bound;
  }

  /** null = the Host header names this console; else why not. */
  checkHost(req: IncomingMessage): string | null {
    const host = req.headers.host;
    if (!host) return 'request without a Host header refused';
    if (this.allows(host, req.socket.localAddress, req.socket.localPort)) return null;
    return `Host "${host.slice(0, 100)}" is not an address of this console (it answers to the address and port it listens on; add other names to console.allowedHosts)`;
  }

  /** For state-changing requests: null = no Origin (not a browser page) or one of this console's names; else why not. */
  checkOrigin(req: IncomingMessage): string | null {
    const origin = req.headers.origin;
    if (origin === undefined) return null;
    let u: URL;
    try {
      u = new URL(origin);
    } catch {
      return `cross-origin control request refused (Origin "${origin.slice(0, 100)}" is not a URL)`;
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return `cross-origin control request refused (Origin "${origin.slice(0, 100)}")`;
    if (this.allows(u.host, req.socket.localAddress, req.socket.localPort, u.protocol === 'https:' ? 443 : 80)) return null;
    return `cross-origin control request refused: Origin "${origin.slice(0, 100)}" is not this console`;
  }
}
