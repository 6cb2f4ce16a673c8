// Maps the daemon's per-frame results back to the streamed images and computes image AUROC, for the parity test.
//
// The RTSP test camera streams the images in a known order, each held for `hold` frames, looping; the stream is
// lossless, so all frames of one image give the same raw score and a new image starts a new run of equal scores.
// The run sequence is then aligned to the image order (one cyclic offset; a run may skip at most `maxSkip` images,
// which would be frames dropped by backpressure). No run is matched by "nearest score": order decides.

export interface Run { raw: number; seqs: number[]; capturedAt: number }

export function toRuns(results: Array<{ rawScore: number; seq: number; capturedAt: number }>, relEps = 1e-6): Run[] {
  const runs: Run[] = [];
  for (const r of results) {
    const last = runs[runs.length - 1];
    if (last && Math.abs(r.rawScore - last.raw) <= relEps * Math.max(Math.abs(last.raw), 1e-12)) last.seqs.push(r.seq);
    else runs.push({ raw: r.rawScore, seqs: [r.seq], capturedAt: r.capturedAt });
  }
  return runs;
}

export interface Alignment { offset: number; images: number[]; skipped: number; maxRelDiff: number }

/** Assigns every run an image index, or returns null when no cyclic offset explains the runs within `relTol`. */
export function align(runs: Run[], reference: number[], relTol: number, maxSkip = 2): Alignment | null {
  const n = reference.length;
  const close = (a: number, b: number): boolean => Math.abs(a - b) <= relTol * Math.max(Math.abs(b), 1e-12);
  let best: Alignment | null = null;
  for (let offset = 0; offset < n; offset++) {
    const images: number[] = [];
    let e = offset;
    let skipped = 0;
    let ok = true;
    let maxRelDiff = 0;
    for (const run of runs) {
      let k = 0;
      while (k <= maxSkip && !close(run.raw, reference[(e + k) % n])) k++;
      if (k > maxSkip) { ok = false; break; }
      skipped += k;
      const idx = (e + k) % n;
      images.push(idx);
      maxRelDiff = Math.max(maxRelDiff, Math.abs(run.raw - reference[idx]) / Math.max(Math.abs(reference[idx]), 1e-12));
      e = idx + 1;
    }
    if (ok && (!best || skipped < best.skipped)) best = { offset, images, skipped, maxRelDiff };
  }
  return best;
}

/** Image AUROC (Mann-Whitney U, ties count one half): labels 1 = defective, higher score = more anomalous. */
export function auroc(labels: number[], scores: number[]): number {
  let pos = 0;
  let neg = 0;
  let u = 0;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] !== 1) continue;
    pos++;
    for (let j = 0; j < labels.length; j++) {
      if (labels[j] !== 0) continue;
      if (scores[i] > scores[j]) u += 1;
      else if (scores[i] === scores[j]) u += 0.5;
    }
  }
  for (const l of labels) if (l === 0) neg++;
  return u / (pos * neg);
}
