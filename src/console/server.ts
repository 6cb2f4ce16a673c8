/**
 * HTTP routes of the console, mounted on the daemon's health server (src/health/http.ts asks this handler first).
 *
 *   GET  /                                       the page (assets under /assets/)
 *   GET  /api/state                              overview: health, cameras with counters and capture, model, control mode
 *   GET  /api/cameras/:cam/live.jpg              latest frame + heat map + mask outline (x-seq, x-score, x-raw-score, x-verdict)
 *   GET  /api/cameras/:cam/trend?seconds=300     scores over time against the threshold (0.5)
 *   GET  /api/cameras/:cam/ng?order=newest|raw   the last NG frames kept in memory (raw: highest raw score first)
 *   GET  /api/cameras/:cam/ng/:id.jpg            one NG frame with its overlay
 *   POST /api/cameras/:cam/ng/:id/false-reject   save that frame to the review folder          (control)
 *   GET  /api/cameras/:cam/capture               capture status
 *   POST /api/cameras/:cam/capture/start         {everyN?, maxImages?, maxBytes?}               (control)
 *   POST /api/cameras/:cam/capture/stop                                                          (control)
 *   POST /api/cameras/:cam/threshold             {threshold: <raw score> | null}               (control)
 *
 * Every refusal is a 4xx/5xx with {"error": "<reason>"}; nothing here throws into the server.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../log';
import { Assets, loadAssets } from './assets';
import { HostCheck } from './host-check';
import { ConsoleError, ConsoleHub } from './hub';

const MAX_BODY = 4096;
const REFUSAL_LOG_MS = 10_000;

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
  res.end(JSON.stringify(body));
}

function sendError(res: ServerResponse, status: number, message: string, extra: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...extra });
  res.end(JSON.stringify({ error: message }));
}

function sendJpeg(res: ServerResponse, data: Buffer, headers: Record<string, string> = {}): void {
  res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': String(data.length), 'cache-control': 'no-store', ...headers });
  res.end(data);
}

/** Reads a small JSON object body; ConsoleError for anything else. */
async function readJsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  // Also the CSRF guard: a cross-site HTML form cannot send application/json without a CORS preflight.
  if (type !== 'application/json') throw new ConsoleError('control requests need "content-type: application/json"', 415);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new ConsoleError(`request body larger than ${MAX_BODY} bytes`, 413);
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (err) {
    throw new ConsoleError(`body is not valid JSON (${(err as Error).message})`, 400);
  }
  if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new ConsoleError('body must be a JSON object', 400);
  return j as Record<string, unknown>;
}

function onlyKeys(body: Record<string, unknown>, allowed: string[]): void {
  const extra = Object.keys(body).filter((k) => !allowed.includes(k));
  if (extra.length) throw new ConsoleError(`unknown field(s) ${extra.join(', ')}${allowed.length ? ` (allowed: ${allowed.join(', ')})` : ' (no fields expected)'}`, 400);
}

function segment(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new ConsoleError(`bad URL encoding in "${s}"`, 400);
  }
}

function ngId(s: string): number {
  if (!/^[0-9]{1,12}$/.test(s)) throw new ConsoleError(`NG id must be a positive integer, got "${s}"`, 400);
  return Number(s);
}

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

export function consoleHandler(hub: ConsoleHub, log: Logger, assets: Assets = loadAssets()): RequestHandler {
  const hosts = new HostCheck(hub.opts.host, hub.opts.allowedHosts ?? []);
  const route = async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> => {
    const method = req.method ?? 'GET';
    const path = url.pathname;
    // Every console request, page included: a rebinding page must not even read the state (docs/console.md).
    const misdirected = hosts.checkHost(req);
    if (misdirected) throw new ConsoleError(misdirected, 421);
    const asset = assets.files.get(path === '/index.html' ? '/' : path);
    if (asset) {
      if (method !== 'GET' && method !== 'HEAD') return sendError(res, 405, `${method} not allowed on ${path}`, { allow: 'GET, HEAD' });
      res.writeHead(200, {
        'content-type': asset.type,
        'content-length': String(asset.body.length),
        'cache-control': 'no-cache',
        'content-security-policy': assets.csp,
        'x-content-type-options': 'nosniff',
        'referrer-policy': 'no-referrer',
      });
      res.end(method === 'HEAD' ? undefined : asset.body);
      return;
    }
    if (path === '/api/state') {
      if (method !== 'GET') return sendError(res, 405, `${method} not allowed on ${path}`, { allow: 'GET' });
      return sendJson(res, 200, hub.state());
    }
    const m = /^\/api\/cameras\/([^/]+)\/(.+)$/.exec(path);
    if (!m) return sendError(res, 404, `not found: ${path} (the console is at /, its API under /api/)`);
    const camera = segment(m[1]);
    const rest = m[2];
    const isPost = method === 'POST';
    const control = async (): Promise<Record<string, unknown>> => {
      const foreign = hosts.checkOrigin(req);
      if (foreign) throw new ConsoleError(foreign, 403);
      const denied = hub.gate.check(req.headers.authorization);
      if (denied) throw new ConsoleError(denied.message, denied.status);
      return readJsonBody(req);
    };
    const want = (allowed: 'GET' | 'POST'): void => {
      if (method !== allowed) throw new ConsoleError(`${method} not allowed on ${path} (use ${allowed})`, 405);
    };
    if (rest === 'live.jpg') {
      want('GET');
      const live = await hub.live(camera);
      if (!live) return sendError(res, 503, 'no frame yet: the live view starts with the next frame', { 'retry-after': '1' });
      return sendJpeg(res, live.jpeg, {
        'x-seq': String(live.seq),
        'x-score': live.score.toFixed(4),
        'x-raw-score': String(live.rawScore),
        'x-raw-threshold': String(live.rawThreshold),
        'x-verdict': live.verdict,
        'x-captured-at': String(live.capturedAt),
      });
    }
    if (rest === 'trend') {
      want('GET');
      const raw = url.searchParams.get('seconds') ?? String(hub.opts.trendSeconds);
      const seconds = Number(raw);
      if (!/^[0-9]+$/.test(raw) || seconds < 1 || seconds > hub.opts.trendSeconds) {
        throw new ConsoleError(`seconds must be an integer between 1 and ${hub.opts.trendSeconds} (console.trendSeconds)`, 400);
      }
      return sendJson(res, 200, hub.trend(camera, seconds));
    }
    if (rest === 'ng') {
      want('GET');
      const order = url.searchParams.get('order') ?? 'newest';
      if (order !== 'newest' && order !== 'raw') throw new ConsoleError(`order must be "newest" or "raw" (highest raw score first), got "${order.slice(0, 40)}"`, 400);
      return sendJson(res, 200, { camera, kept: hub.opts.ngHistory, order, items: hub.ngList(camera, order) });
    }
    const img = /^ng\/([^/]+)\.jpg$/.exec(rest);
    if (img) {
      want('GET');
      return sendJpeg(res, await hub.ngImage(camera, ngId(img[1])));
    }
    const fr = /^ng\/([^/]+)\/false-reject$/.exec(rest);
    if (fr) {
      want('POST');
      const id = ngId(fr[1]);
      onlyKeys(await control(), []);
      return sendJson(res, 200, await hub.markFalseReject(camera, id));
    }
    if (rest === 'capture') {
      want('GET');
      return sendJson(res, 200, hub.captureStatus(camera));
    }
    if (rest === 'capture/start' || rest === 'capture/stop') {
      want('POST');
      const body = await control();
      if (rest === 'capture/stop') {
        onlyKeys(body, []);
        return sendJson(res, 200, hub.captureStop(camera));
      }
      onlyKeys(body, ['everyN', 'maxImages', 'maxBytes']);
      return sendJson(res, 200, await hub.captureStart(camera, body));
    }
    if (rest === 'threshold') {
      want('POST');
      const body = await control();
      onlyKeys(body, ['threshold']);
      if (!('threshold' in body)) throw new ConsoleError('body needs {"threshold": <raw score >= 0> | null}', 400);
      return sendJson(res, 200, hub.setThreshold(camera, body.threshold, 'console'));
    }
    if (isPost) throw new ConsoleError(`not found: ${path}`, 404);
    return sendError(res, 404, `not found: ${path}`);
  };

  let lastRefusalLog = 0;
  return (req, res) => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://console.invalid');
    } catch {
      sendError(res, 400, 'bad request URL');
      return true;
    }
    const p = url.pathname;
    if (!(assets.files.has(p) || p === '/index.html' || p === '/api' || p.startsWith('/api/'))) return false;
    route(req, res, url).catch((err: Error) => {
      if (err instanceof ConsoleError) {
        if (err.status >= 500) log.warn({ path: p, err: err.message }, 'console request failed');
        else if ((err.status === 421 || err.status === 403) && Date.now() - lastRefusalLog > REFUSAL_LOG_MS) {
          // A hostile page can repeat these as fast as it likes: one line per REFUSAL_LOG_MS is enough to notice.
          lastRefusalLog = Date.now();
          log.warn({ path: p, method: req.method, err: err.message }, 'console request refused');
        }
        sendError(res, err.status, err.message, err.status === 405 ? { allow: 'GET, POST' } : {});
        return;
      }
      log.error({ path: p, err: err.message }, 'console request failed');
      sendError(res, 500, `internal error: ${err.message}`);
    });
    return true;
  };
}
