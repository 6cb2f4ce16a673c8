/**
 * Writes a synthetic-part dataset in the MVTec AD layout, from the same generator as the `synthetic://` camera:
 *
 *   node dist/src/tools/synth-dataset.js --out DIR [--train 200 --test-good 30 --test-defect 30 --size 256 --seed 1]
 *
 *   DIR/synthetic_part/train/good/000.png
 *   DIR/synthetic_part/test/good/000.png
 *   DIR/synthetic_part/test/<defect>/000.png
 *   DIR/synthetic_part/ground_truth/<defect>/000_mask.png   (binary 0/255)
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { DEFECT_KINDS, DefectKind, renderPart } from '../sources/synthetic/part';
import { createRng, deriveSeed } from '../sources/synthetic/rng';

export interface SynthDatasetOptions {
  out: string;
  category: string;
  train: number;
  testGood: number;
  testDefect: number;
  size: number;
  seed: number;
  onProgress?: (done: number, total: number) => void;
}

interface Job {
  split: number;
  index: number;
  dir: string;
  stem: string;
  defect: DefectKind | null;
  maskDir: string | null;
}

const SPLIT_TRAIN = 1;
const SPLIT_TEST_GOOD = 2;
const SPLIT_TEST_DEFECT = 3;

function plan(o: SynthDatasetOptions): Job[] {
  const root = join(o.out, o.category);
  const jobs: Job[] = [];
  const stem = (i: number): string => String(i).padStart(3, '0');
  for (let i = 0; i < o.train; i++) {
    jobs.push({ split: SPLIT_TRAIN, index: i, dir: join(root, 'train', 'good'), stem: stem(i), defect: null, maskDir: null });
  }
  for (let i = 0; i < o.testGood; i++) {
    jobs.push({ split: SPLIT_TEST_GOOD, index: i, dir: join(root, 'test', 'good'), stem: stem(i), defect: null, maskDir: null });
  }
  const perKind = new Map<DefectKind, number>();
  for (let i = 0; i < o.testDefect; i++) {
    const defect = DEFECT_KINDS[i % DEFECT_KINDS.length];
    const k = perKind.get(defect) ?? 0;
    perKind.set(defect, k + 1);
    jobs.push({
      split: SPLIT_TEST_DEFECT,
      index: i,
      dir: join(root, 'test', defect),
      stem: stem(k),
      defect,
      maskDir: join(root, 'ground_truth', defect),
    });
  }
  return jobs;
}

async function runJob(o: SynthDatasetOptions, job: Job): Promise<void> {
  const rng = createRng(deriveSeed(o.seed, job.split, job.index));
  const part = await renderPart(rng, o.size, job.defect);
  const raw = { raw: { width: o.size, height: o.size, channels: 3 as const } };
  await sharp(part.rgb, raw).png().toFile(join(job.dir, `${job.stem}.png`));
  if (job.maskDir && part.mask) {
    await sharp(part.mask, { raw: { width: o.size, height: o.size, channels: 1 } })
      .png()
      .toFile(join(job.maskDir, `${job.stem}_mask.png`));
  }
}

export async function writeSynthDataset(o: SynthDatasetOptions): Promise<number> {
  const jobs = plan(o);
  for (const d of new Set(jobs.flatMap((j) => (j.maskDir ? [j.dir, j.maskDir] : [j.dir])))) mkdirSync(d, { recursive: true });
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const job = jobs[next++];
      await runJob(o, job);
      done++;
      o.onProgress?.(done, jobs.length);
    }
  };
  // Two in flight keep libvips busy without starving the other processes on a small machine.
  await Promise.all([worker(), worker()]);
  return jobs.length;
}

function intArg(name: string, value: string | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name}: expected an integer >= ${min}, got "${value}"`);
  return n;
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      out: { type: 'string' },
      category: { type: 'string' },
      train: { type: 'string' },
      'test-good': { type: 'string' },
      'test-defect': { type: 'string' },
      size: { type: 'string' },
      seed: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help || !values.out) {
    process.stderr.write(
      'usage: synth-dataset --out DIR [--category synthetic_part] [--train 200] [--test-good 30] [--test-defect 30] [--size 256] [--seed 1]\n',
    );
    process.exitCode = values.help ? 0 : 2;
    return;
  }
  const opts: SynthDatasetOptions = {
    out: values.out,
    category: values.category ?? 'synthetic_part',
    train: intArg('train', values.train, 200, 0),
    testGood: intArg('test-good', values['test-good'], 30, 0),
    testDefect: intArg('test-defect', values['test-defect'], 30, 0),
    size: intArg('size', values.size, 256, 32),
    seed: intArg('seed', values.seed, 1, 0),
  };
  const started = Date.now();
  let lastPrint = 0;
  opts.onProgress = (done, total) => {
    const now = Date.now();
    if (done === total || now - lastPrint > 2000) {
      lastPrint = now;
      const rate = done / Math.max(0.001, (now - started) / 1000);
      const eta = (total - done) / Math.max(rate, 0.001);
      process.stderr.write(`synth-dataset: ${done}/${total} images, ${rate.toFixed(1)}/s, ETA ${eta.toFixed(0)} s\n`);
    }
  };
  const n = await writeSynthDataset(opts);
  process.stdout.write(`wrote ${n} images to ${join(opts.out, opts.category)} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`synth-dataset: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
