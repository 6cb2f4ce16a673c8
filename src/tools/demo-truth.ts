/**
 * Scores the demo against the synthetic line's ground truth. The `synthetic://` camera is deterministic: part n of
 * the line (frame seq n) is defective or not according to its seed and defectRate, so results read from MQTT can be
 * compared with what was really on the belt. Valid while the camera's decoder did not restart (a restart loses the
 * frames inside the old decoder and shifts the mapping; see etstpm_camera_decoder_restarts).
 *
 *   node dist/src/tools/demo-truth.js [--mqtt mqtt://127.0.0.1:1883] [--prefix etstpm] [--camera sim-1]
 *                                     [--url synthetic://] [--seconds 60]
 */
import mqtt from 'mqtt';
import { parseArgs } from 'node:util';
import { DefectKind, pickDefect, renderPart } from '../sources/synthetic/part';
import { createRng } from '../sources/synthetic/rng';
import { parseSynthetic } from '../sources/url';

interface Result {
  seq: number;
  verdict: 'ok' | 'ng';
  score: number;
}

/** Ground truth for parts 1..n: replays the line's rng exactly as SyntheticLine.next() consumes it. */
export async function lineTruth(url: string, n: number): Promise<Array<DefectKind | null>> {
  const p = parseSynthetic(url);
  const rng = createRng(p.seed);
  const truth: Array<DefectKind | null> = [null];
  // renderPart draws pose and defect geometry from the rng; rendering at a tiny size consumes it identically.
  for (let i = 1; i <= n; i++) {
    const d = pickDefect(rng, p.defectRate);
    await renderPart(rng, 32, d);
    truth.push(d);
  }
  return truth;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      mqtt: { type: 'string' },
      prefix: { type: 'string' },
      camera: { type: 'string' },
      url: { type: 'string' },
      seconds: { type: 'string' },
    },
    strict: true,
  });
  const url = values.url ?? 'synthetic://';
  const topic = `${values.prefix ?? 'etstpm'}/${values.camera ?? 'sim-1'}/result`;
  const client = await mqtt.connectAsync(values.mqtt ?? 'mqtt://127.0.0.1:1883', { protocolVersion: 4 });
  const results: Result[] = [];
  client.on('message', (_t, payload) => results.push(JSON.parse(payload.toString()) as Result));
  await client.subscribeAsync(topic);
  const seconds = Number(values.seconds ?? 60);
  process.stderr.write(`demo-truth: collecting ${topic} for ${seconds} s\n`);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  await client.endAsync();
  if (results.length === 0) throw new Error(`no results on ${topic}`);
  const truth = await lineTruth(url, Math.max(...results.map((r) => r.seq)));
  const c = { truePositive: 0, falsePositive: 0, trueNegative: 0, falseNegative: 0 };
  const perKind: Record<string, { parts: number; detected: number }> = {};
  for (const r of results) {
    const d = truth[r.seq];
    if (d) {
      perKind[d] ??= { parts: 0, detected: 0 };
      perKind[d].parts++;
      if (r.verdict === 'ng') perKind[d].detected++;
    }
    if (r.verdict === 'ng') c[d ? 'truePositive' : 'falsePositive']++;
    else c[d ? 'falseNegative' : 'trueNegative']++;
  }
  const good = c.falsePositive + c.trueNegative;
  const bad = c.truePositive + c.falseNegative;
  process.stdout.write(
    `${JSON.stringify({
      topic,
      url,
      results: results.length,
      seqRange: [Math.min(...results.map((r) => r.seq)), Math.max(...results.map((r) => r.seq))],
      ...c,
      falseRejectRate: good ? c.falsePositive / good : null,
      detectionRate: bad ? c.truePositive / bad : null,
      perKind,
    })}\n`,
  );
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`demo-truth: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
