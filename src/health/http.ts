/** GET /healthz (200 when ready and processing, else 503 with the reason) and GET /metrics (Prometheus text). */
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Logger } from '../log';
import type { Metrics } from './metrics';

export interface Health {
  ok: boolean;
  reason?: string;
  [k: string]: unknown;
}

export interface HttpServer {
  port: number;
  close(): Promise<void>;
}

export async function startHttp(
  host: string,
  port: number,
  health: () => Health,
  metrics: Metrics,
  log: Logger,
  /** Outputs' routes (the operator console, docs/console.md): tried first; returns false for paths it does not serve. */
  extra: ((req: IncomingMessage, res: ServerResponse) => boolean) | null = null,
): Promise<HttpServer> {
  const server: Server = createServer((req, res) => {
    if (extra?.(req, res)) return;
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
      const h = health();
      res.writeHead(h.ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(h));
    } else if (path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(err.message),
      );
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: try ${extra ? '/ (console), ' : ''}/healthz or /metrics\n`);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new Error(`http: cannot listen on ${host}:${port} (${err.code ?? err.message})${listenHint(err.code)}`)));
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  const actual = typeof addr === 'object' && addr ? addr.port : port;
  log.info({ host, port: actual }, `health endpoint on http://${host}:${actual}/healthz and /metrics${extra ? `, console on http://${host}:${actual}/` : ''}`);
  return {
    port: actual,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** What to do about the usual listen errors (the daemon exits 1 with this line; docs/daemon.md, exit codes). */
function listenHint(code: string | undefined): string {
  if (code === 'EADDRINUSE') return ': another process already listens on this port; choose another http.port (--http-port, ETSTPM_HTTP_PORT) or 0 to serve no HTTP';
  if (code === 'EACCES') return ': ports below 1024 need privileges; choose http.port 1024 or above';
  if (code === 'EADDRNOTAVAIL') return ': http.host is not an address of this machine';
  return '';
}
