// CPU cost of one NG snapshot at the model size (bench/daemon/README.md, "Where the time went"): the picture
// composed in JavaScript (src/render/overlay.ts) against the nine-step libvips chain it replaced
// (test/unit/libvips-overlay.ts), and renderSnapshot as a whole (picture + JPEG encode). CPU time of the whole
// process (libvips threads included), so the number holds on a loaded machine where wall time does not.
//
//   node dist/bench/daemon/snapshot-cost.js [--size 256] [--n 100] [--out FILE.json]
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { composeOverlay } from '../../src/render/overlay';
import { renderSnapshot } from '../../src/render/snapshot';
import { libvipsOverlay } from '../../test/unit/libvips-overlay';
import { round } from './stats';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
}

async function cpuMsPer(n: number, f: () => unknown): Promise<number> {
  for (let i = 0; i < 10; i++) await f();
  const c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) await f();
  const c = process.cpuUsage(c0);
  return round((c.user + c.system) / 1000 / n, 3);
}

async function main(): Promise<void> {
  const size = Number(arg('size', '256'));
  const n = Number(arg('n', '100'));
  const frame = Buffer.alloc(size * size * 3);
  for (let i = 0; i < frame.length; i++) frame[i] = (i * 7) & 255;
  // A map that crosses the heat ramp and the threshold in many places (half the pixels NG).
  const map = new Float32Array(size * size).map((_, i) => Math.sin(i / 500) * 2);
  const normalization = { threshold: 0.5, min: -2, max: 2 };
  const input = { frame, map, width: size, height: size, normalization };
  const report = {
    created: new Date().toISOString(),
    command: `node ${process.argv.slice(1).join(' ')}`,
    machine: { cpu: cpus()[0]?.model, cores: cpus().length, loadavg: loadavg().map((v) => round(v, 2)), node: process.version },
    size, n,
    cpuMsPerSnapshot: {
      overlayJavaScript: await cpuMsPer(n, () => composeOverlay(frame, map, size, size, normalization)),
      overlayLibvipsChain: await cpuMsPer(n, () => libvipsOverlay(input, normalization)),
      renderSnapshotJpeg: await cpuMsPer(n, () => renderSnapshot(input, { format: 'jpeg', maxBytes: 262144 })),
    },
    note: 'process CPU time (main thread + libvips threads) per call; the JavaScript overlay runs on the event loop',
  };
  const text = JSON.stringify(report, null, 2);
  if (arg('out', '')) writeFileSync(arg('out', ''), text + '\n');
  console.log(text);
}

main().catch((e) => { console.error(e); process.exit(1); });
