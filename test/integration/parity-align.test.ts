// The parity test's matching logic on its own (no daemon): runs of equal scores, order alignment that tolerates
// dropped images but never matches by nearest score, and AUROC with ties.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { align, auroc, toRuns } from './helpers/parity';

const res = (scores: number[]) => scores.map((rawScore, i) => ({ rawScore, seq: i + 1, capturedAt: 1000 + i }));

describe('parity matching helpers', () => {
  test('runs: consecutive equal scores form one run', () => {
    const runs = toRuns(res([0.3, 0.3, 0.5, 0.5, 0.5, 0.3, 0.2]));
    assert.deepEqual(runs.map((r) => r.raw), [0.3, 0.5, 0.3, 0.2]);
    assert.deepEqual(runs[1].seqs, [3, 4, 5]);
  });

  test('align: cyclic offset found, a dropped image is skipped, every run assigned in order', () => {
    const ref = [0.1, 0.2, 0.3, 0.4, 0.5];
    const runs = toRuns(res([0.3, 0.4, 0.1, 0.2, 0.3, 0.5, 0.1])); // 0.5 dropped after 0.4, then 0.4 after 0.3
    const a = align(runs, ref, 1e-6);
    assert.ok(a);
    assert.equal(a.offset, 2);
    assert.deepEqual(a.images, [2, 3, 0, 1, 2, 4, 0]);
    assert.equal(a.skipped, 2);
  });

  test('align: shuffled order or wrong scores are rejected', () => {
    const ref = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7];
    assert.equal(align(toRuns(res([0.1, 0.6, 0.3, 0.7, 0.2])), ref, 1e-6), null, 'out of order');
    assert.equal(align(toRuns(res([0.1, 0.2, 0.31, 0.4])), ref, 1e-6), null, 'score off by 3 %');
    assert.ok(align(toRuns(res([0.1, 0.2, 0.31, 0.4])), ref, 0.05), 'within a 5 % tolerance');
  });

  test('auroc: Mann-Whitney with ties as one half', () => {
    assert.equal(auroc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]), 1);
    assert.equal(auroc([0, 0, 1, 1], [0.3, 0.4, 0.1, 0.2]), 0);
    assert.equal(auroc([0, 1], [0.5, 0.5]), 0.5);
    assert.equal(auroc([0, 0, 1], [0.1, 0.3, 0.2]), 0.5);
  });
});
