/**
 * Measures whether recreating onnxruntime sessions in-process leaks: N cycles of create -> one run -> release on the
 * given model folder, printing resident memory after each cycle (run node with --expose-gc to collect in between).
 *
 *   node --expose-gc dist/src/tools/session-reload-rss.js --model-dir DIR [--cycles 40] [--provider cpu]
 */
import * as ort from 'onnxruntime-node';
import { parseArgs } from 'node:util';
import { readManifest } from '../infer/manifest';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { 'model-dir': { type: 'string' }, cycles: { type: 'string' }, provider: { type: 'string' } },
    strict: true,
  });
  if (!values['model-dir']) throw new Error('usage: session-reload-rss --model-dir DIR [--cycles 40] [--provider cpu]');
  const m = readManifest(values['model-dir']);
  const cycles = Number(values.cycles ?? 40);
  const provider = values.provider ?? 'cpu';
  const frame = new Uint8Array(m.height * m.width * 3).fill(100);
  const gc = (globalThis as { gc?: () => void }).gc;
  const rssMiB: number[] = [];
  const t0 = Date.now();
  for (let i = 0; i < cycles; i++) {
    const s = await ort.InferenceSession.create(m.onnxPath, { executionProviders: [provider], graphOptimizationLevel: 'all' });
    await s.run({ [m.inputName]: new ort.Tensor('uint8', frame, [1, m.height, m.width, 3]) });
    await s.release();
    gc?.();
    rssMiB.push(Math.round(process.memoryUsage().rss / 1048576));
  }
  const half = Math.floor(cycles / 2);
  process.stdout.write(
    `${JSON.stringify({
      model: m.name,
      provider,
      cycles,
      gcBetweenCycles: Boolean(gc),
      wallS: (Date.now() - t0) / 1000,
      rssMiB,
      // RSS swings with the allocator from cycle to cycle; a leak shows as a higher peak in the second half.
      firstHalfMaxMiB: Math.max(...rssMiB.slice(0, half)),
      secondHalfMaxMiB: Math.max(...rssMiB.slice(half)),
    })}\n`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`session-reload-rss: ${(err as Error).message}\n`);
  process.exit(1);
});
