// Where things are, and which real components this machine has: every integration test names what it needs and
// is skipped with a readable reason when one is missing (CI installs all of them through scripts/install-deps.sh).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

function findRepoRoot(): string {
  let dir = __dirname;
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'test', 'fixtures'))) return dir;
    const up = resolve(dir, '..');
    if (up === dir) throw new Error(`repository root not found above ${__dirname}`);
    dir = up;
  }
}

export const REPO = findRepoRoot();
export const FIXTURES = join(REPO, 'test', 'fixtures');
export const DAEMON_MAIN = join(REPO, 'dist', 'src', 'main.js');
/** The system python: the only one with python3-gi (gst-rtsp-server bindings). */
export const SYSTEM_PYTHON = process.env.ETSTPM_SYSTEM_PYTHON ?? '/usr/bin/python3';
/** The project's virtual environment (onnx, onnxruntime, pillow, the etstpm toolkit). */
export const VENV_PYTHON = join(REPO, '.venv', 'bin', 'python');
export const ETSTPM_CLI = join(REPO, '.venv', 'bin', 'etstpm');
export const SHARED = process.env.ETSTPM_SHARED ?? resolve(REPO, '..', 'shared');

export type Requirement = 'daemon' | 'mosquitto' | 'tls' | 'ffmpeg' | 'rtsp-server' | 'venv' | 'shared' | 'etstpm';

function ok(cmd: string, args: string[]): boolean {
  const r = spawnSync(cmd, args, { stdio: 'ignore', timeout: 20000 });
  return r.status === 0;
}

const probes: Record<Requirement, () => string | null> = {
  daemon: () => (existsSync(DAEMON_MAIN) ? null : `daemon not built: ${DAEMON_MAIN} missing (run npm run build)`),
  mosquitto: () => (ok('mosquitto', ['-h']) || ok('sh', ['-c', 'command -v mosquitto']) ? null
    : 'mosquitto not installed (apt-get install mosquitto mosquitto-clients)'),
  tls: () => (ok('openssl', ['version']) && ok('sh', ['-c', 'command -v mosquitto_passwd']) ? null
    : 'openssl or mosquitto_passwd missing (apt-get install openssl mosquitto)'),
  ffmpeg: () => (ok('ffmpeg', ['-version']) ? null : 'ffmpeg not installed (apt-get install ffmpeg)'),
  'rtsp-server': () => (ok(SYSTEM_PYTHON, ['-c',
    "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"]) ? null
    : `gst-rtsp-server not usable from ${SYSTEM_PYTHON} (apt-get install python3-gi gir1.2-gst-rtsp-server-1.0)`),
  venv: () => (ok(VENV_PYTHON, ['-c', 'import onnx, onnxruntime, PIL, numpy']) ? null
    : `${VENV_PYTHON} with onnx, onnxruntime, pillow missing (scripts/install-deps.sh all)`),
  shared: () => (existsSync(join(SHARED, 'data')) ? null
    : `shared assets not found at ${SHARED} (set ETSTPM_SHARED to the read-only ../shared folder)`),
  etstpm: () => (existsSync(ETSTPM_CLI) && ok(ETSTPM_CLI, ['--help']) ? null
    : `training toolkit CLI not usable: ${ETSTPM_CLI} (scripts/install-deps.sh all)`),
};

const cache = new Map<Requirement, string | null>();

/** Returns false when everything is present, else the reason to skip (for node:test's `skip` option). */
export function missing(...reqs: Requirement[]): string | false {
  const reasons: string[] = [];
  for (const r of reqs) {
    if (!cache.has(r)) cache.set(r, probes[r]());
    const why = cache.get(r);
    if (why) reasons.push(why);
  }
  if (reasons.length === 0) return false;
  const msg = `SKIPPED: ${reasons.join('; ')}`;
  process.stderr.write(`# ${msg}\n`);
  return msg;
}

/** A fresh temporary folder, removed by the returned cleanup (also tolerated when already gone). */
export function tmpDir(prefix = 'etstpm-it-'): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A loopback TCP port that was free a moment ago (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => res(port));
    });
  });
}
