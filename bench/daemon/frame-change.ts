// Cost per frame of the frozen-image check (docs/daemon.md, "Frozen cameras"), against what each frame already costs the daemon.
//
//   node dist/bench/daemon/frame-change.js [--out bench/results/frame-change.json]
//
// Candidates, on RGB frames at model sizes: Buffer.equals with the previous frame (what src/sources/frame-change.ts
// does; identical frames are its worst case: the whole frame is compared), a 32-bit FNV-1a hash over a strided
// sample of 4096 bytes (the cheaper-looking alternative), md5 of the whole frame. Reference in the same run: one
// Buffer.copy of the frame (FrameReader already copies every frame byte once). Reported as µs per frame and as a
// ratio to that copy, so the shared machine's load swings cancel out.
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';

function timeIt(fn: () => unknown, minMs = 300): number {
  let n = 0;
  const t0 = performance.now();
  let sink = 0;
  while (performance.now() - t0 < minMs) {
    for (let i = 0; i < 64; i++) sink ^= Number(fn()) | 0;
    n += 64;
  }
  if (sink === 0.5) console.log(sink); // keep the results alive
  return ((performance.now() - t0) * 1000) / n; // µs per call
}

function fnvStrided(b: Buffer, samples = 4096): number {
  const step = Math.max(1, Math.floor(b.length / samples));
  let h = 0x811c9dc5;
  for (let i = 0; i < b.length; i += step) h = Math.imul(h ^ b[i], 0x01000193);
  return h >>> 0;
}

const sizes = [64, 256, 512];
const rows = sizes.map((s) => {
  const bytes = s * s * 3;
  const a = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) a[i] = (i * 2654435761) >>> 24;
  const same = Buffer.from(a);
  const lastDiffers = Buffer.from(a);
  lastDiffers[bytes - 1] ^= 1;
  const firstDiffers = Buffer.from(a);
  firstDiffers[0] ^= 1;
  const dst = Buffer.alloc(bytes);
  const copy = timeIt(() => a.copy(dst));
  const r = {
    size: `${s}x${s}`,
    frameBytes: bytes,
    copyUs: copy,
    equalsIdenticalUs: timeIt(() => a.equals(same)),
    equalsLastByteDiffersUs: timeIt(() => a.equals(lastDiffers)),
    equalsFirstByteDiffersUs: timeIt(() => a.equals(firstDiffers)),
    fnvStrided4096Us: timeIt(() => fnvStrided(a)),
    md5Us: timeIt(() => createHash('md5').update(a).digest().readUInt32LE(0)),
  };
  return { ...r, ratioToCopy: { equalsIdentical: r.equalsIdenticalUs / copy, fnvStrided4096: r.fnvStrided4096Us / copy, md5: r.md5Us / copy } };
});
const out = {
  command: `node dist/bench/daemon/frame-change.js ${process.argv.slice(2).join(' ')}`.trim(),
  date: new Date().toISOString(),
  machine: { cpu: cpus()[0]?.model, cores: cpus().length, loadavg: loadavg() },
  node: process.version,
  rows,
};
console.table(rows.map((r) => ({ size: r.size, 'copy µs': r.copyUs.toFixed(2), 'equals (identical) µs': r.equalsIdenticalUs.toFixed(2),
  'equals (last byte differs) µs': r.equalsLastByteDiffersUs.toFixed(2), 'equals (first differs) µs': r.equalsFirstByteDiffersUs.toFixed(3),
  'strided fnv µs': r.fnvStrided4096Us.toFixed(2), 'md5 µs': r.md5Us.toFixed(1), 'equals/copy': r.ratioToCopy.equalsIdentical.toFixed(2) })));
const i = process.argv.indexOf('--out');
if (i > 0) writeFileSync(process.argv[i + 1], `${JSON.stringify(out, null, 2)}\n`);
