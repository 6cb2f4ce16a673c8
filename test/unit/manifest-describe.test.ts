/** The manifest carries what the console describes a model by (method, threshold method, fine-tune): one reader of model.json. */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { describeMethod } from '../../src/console/hub';
import { readManifest } from '../../src/infer/manifest';
import { REPO, TINY_MODEL } from './helpers';

describe('model description from the manifest', () => {
  it('the demo model: memory bank, its threshold method and fine-tune', () => {
    const m = readManifest(resolve(REPO, 'models', 'demo'));
    assert.equal(m.method, 'membank');
    assert.equal(m.thresholdMethod, 'order-statistic');
    assert.equal(m.finetune, 'none');
    assert.equal(describeMethod(m), 'memory bank, threshold order-statistic, teacher fine-tune none');
  });

  it('a model.json without the keys: ET-STPM, nothing else said', () => {
    const dir = mkdtempSync(join(tmpdir(), 'manifest-'));
    try {
      const j = JSON.parse(readFileSync(join(TINY_MODEL, 'model.json'), 'utf8')) as Record<string, unknown>;
      delete j.method;
      delete j.training;
      j.threshold = { raw: (j.threshold as { raw?: number } | undefined)?.raw ?? 1 };
      writeFileSync(join(dir, 'model.json'), JSON.stringify(j));
      copyFileSync(join(TINY_MODEL, 'model.onnx'), join(dir, 'model.onnx'));
      const m = readManifest(dir);
      assert.deepEqual([m.method, m.thresholdMethod, m.finetune], ['stpm', null, null]);
      assert.equal(describeMethod(m), 'ET-STPM');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
