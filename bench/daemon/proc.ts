/** Small helpers the daemon benchmarks share: command-line flags, a process tree's resident memory, /metrics. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from '../../test/integration/helpers/env';

/** `--name VALUE` from the command line, or `def`. */
export function arg(name: string, def?: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
}

/** Resident set size of one process (MiB), null once it is gone. */
export function rssMiB(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** Direct children of a process (all its threads' children). */
export function children(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      const c = readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim();
      if (c) out.push(...c.split(/\s+/).map(Number));
    }
  } catch { /* process gone */ }
  return out;
}

/** What a benchmark streams and to which model: --model, --images, --codec, --size (default: the model's input size
 * for raw video, 640x480 for H.264, which the daemon then resizes), --out. */
export interface StreamArgs {
  modelDir: string;
  imageDirs: string[];
  codec: 'raw' | 'h264';
  size: string;
  manifest: { name: string; version: string; input: { width: number; height: number } };
  out: string | undefined;
}

export function streamArgs(): StreamArgs {
  const modelDir = arg('model', join(REPO, 'models', 'demo'))!;
  const images = arg('images');
  if (!images) throw new Error('--images DIR[,DIR...] (images to stream, e.g. ../shared/data/mvtec_grid_subset/grid/test/good)');
  const codec = (arg('codec', 'raw') as 'raw' | 'h264');
  const manifest = JSON.parse(readFileSync(join(modelDir, 'model.json'), 'utf8'));
  const size = arg('size', codec === 'raw' ? `${manifest.input.width}x${manifest.input.height}` : '640x480')!;
  return { modelDir, imageDirs: images.split(','), codec, size, manifest, out: arg('out') };
}

/** A progress line on stderr, stamped with the time of day. */
export function stamp(s: string): boolean {
  return process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${s}\n`);
}

/** The daemon's /metrics text (Prometheus exposition); throws when it does not answer within 5 s. */
export async function metricsText(port: number): Promise<string> {
  return (await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
}
