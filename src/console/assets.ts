/**
 * The console's static files, read once at start: our own (src/console/static: index.html, app.js, style.css) and
 * the two small front-end libraries from node_modules (preact + hooks, htm), all served by the daemon itself (the
 * Jetson may be air-gapped). The import map is inline, so the Content-Security-Policy allows exactly its hash.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export interface Asset {
  body: Buffer;
  type: string;
}

export interface Assets {
  files: Map<string, Asset>;
  csp: string;
}

/** src/console/static, found from dist/src/console (build output) or src/console (ts-node, tests). */
export function staticDir(from = __dirname): string {
  let dir = from;
  for (;;) {
    const candidate = join(dir, 'src', 'console', 'static');
    if (existsSync(join(candidate, 'index.html'))) return candidate;
    if (existsSync(join(dir, 'static', 'index.html'))) return join(dir, 'static');
    const up = resolve(dir, '..');
    if (up === dir) throw new Error(`console: static files (src/console/static/index.html) not found above ${from}`);
    dir = up;
  }
}

/** A dependency's folder (htm's "exports" hides its package.json from require.resolve). */
function packageFile(pkg: string, rel: string): Buffer {
  for (const base of require.resolve.paths(pkg) ?? []) {
    const f = join(base, pkg, rel);
    if (existsSync(f)) return readFileSync(f);
  }
  throw new Error(`console: ${pkg}/${rel} not found in node_modules (npm ci)`);
}

const IMPORT_MAP = JSON.stringify({
  imports: { preact: '/assets/preact.mjs', 'preact/hooks': '/assets/hooks.mjs', htm: '/assets/htm.mjs' },
});

export function loadAssets(dir = staticDir()): Assets {
  const js = 'text/javascript; charset=utf-8';
  const importMapTag = `<script type="importmap">${IMPORT_MAP}</script>`;
  const html = readFileSync(join(dir, 'index.html'), 'utf8').replace('<!--importmap-->', importMapTag);
  const files = new Map<string, Asset>([
    ['/', { body: Buffer.from(html), type: 'text/html; charset=utf-8' }],
    ['/assets/app.js', { body: readFileSync(join(dir, 'app.js')), type: js }],
    ['/assets/style.css', { body: readFileSync(join(dir, 'style.css')), type: 'text/css; charset=utf-8' }],
    ['/assets/favicon.svg', { body: readFileSync(join(dir, 'favicon.svg')), type: 'image/svg+xml' }],
    ['/assets/preact.mjs', { body: packageFile('preact', 'dist/preact.mjs'), type: js }],
    ['/assets/hooks.mjs', { body: packageFile('preact', 'hooks/dist/hooks.mjs'), type: js }],
    ['/assets/htm.mjs', { body: packageFile('htm', 'dist/htm.mjs'), type: js }],
  ]);
  const hash = createHash('sha256').update(IMPORT_MAP).digest('base64');
  const csp = [
    "default-src 'none'",
    `script-src 'self' 'sha256-${hash}'`,
    "style-src 'self'",
    "img-src 'self' blob:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  return { files, csp };
}
