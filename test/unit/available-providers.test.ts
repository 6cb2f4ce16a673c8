// The default provider list (tensorrt, cuda, cpu) must start clean on a CPU-only onnxruntime-node:
// providers the binding does not have are skipped before any session is created, and nothing onnxruntime prints
// itself reaches the console outside the JSON log.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { availableProviders, bindingDir, providerLibrary } from '../../src/infer/available-providers';
import { TINY_MODEL } from './helpers';

const ALL = ['tensorrt', 'cuda', 'cpu'] as const;

describe('available execution providers', () => {
  it('CPU-only binding (linux/arm64 npm package): only cpu, the others skipped with the reason', () => {
    const a = availableProviders(ALL, [{ name: 'cpu', bundled: true }], () => true, 'linux');
    assert.deepEqual(a.usable, ['cpu']);
    assert.deepEqual(a.skipped.map((s) => s.provider), ['tensorrt', 'cuda']);
    assert.match(a.skipped[0].reason, /not in this onnxruntime-node build \(its backends: cpu\)/);
  });

  it('GPU-capable binding without its provider libraries (x64 install with ONNXRUNTIME_NODE_INSTALL=skip): cpu only', () => {
    const backends = [{ name: 'cpu', bundled: true }, { name: 'webgpu', bundled: true }, { name: 'cuda', bundled: false }, { name: 'tensorrt', bundled: false }];
    const a = availableProviders(ALL, backends, () => false, 'linux');
    assert.deepEqual(a.usable, ['cpu']);
    assert.match(a.skipped.find((s) => s.provider === 'cuda')?.reason ?? '', /libonnxruntime_providers_cuda\.so and libonnxruntime_providers_shared\.so not installed/);
    // With the libraries next to the binding (the Jetson image) both are tried, in the configured order.
    const withLibs = availableProviders(ALL, backends, () => true, 'linux');
    assert.deepEqual(withLibs.usable, ['tensorrt', 'cuda', 'cpu']);
    assert.equal(providerLibrary('cuda', 'win32'), 'onnxruntime_providers_cuda.dll');
  });

  it('the installed binding lists its backends and lives where the provider libraries are looked for', () => {
    const names = ort.listSupportedBackends().map((b) => b.name);
    assert.ok(names.includes('cpu'), names.join(','));
    assert.ok(bindingDir().endsWith(join('bin', 'napi-v6', process.platform, process.arch)));
  });

  it('default providers on this machine: every output line is JSON, also when a provider library fails to load', () => {
    // A child process, because onnxruntime's logger is set up once per process and writes to the real stderr.
    const session = resolve(__dirname, '..', '..', 'src', 'infer', 'session.js');
    const logMod = resolve(__dirname, '..', '..', 'src', 'log.js');
    const script = `
      const { InferenceEngine } = require(${JSON.stringify(session)});
      const { createLogger } = require(${JSON.stringify(logMod)});
      const log = createLogger('info');
      const opts = { modelDir: ${JSON.stringify(TINY_MODEL)}, providers: ['tensorrt', 'cuda', 'cpu'], maxBatch: 1, tensorrt: { cacheDir: '/nonexistent', fp16: false } };
      (async () => {
        const a = await InferenceEngine.load(opts, log);
        // Forced attempt at cuda: onnxruntime fails to load its provider library (this printed a raw red line).
        const forced = await InferenceEngine.load(opts, log, undefined, () => ({ usable: ['cuda', 'cpu'], skipped: [] }));
        log.info({ first: a.provider, forced: forced.provider }, 'done');
        await a.close(); await forced.close();
      })().catch((e) => { console.error(e); process.exit(1); });`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60000 });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    const lines = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => l.trim() !== '');
    for (const l of lines) assert.doesNotThrow(() => JSON.parse(l), `not a JSON log line: ${l}`);
    const msgs = lines.map((l) => JSON.parse(l) as { msg: string; first?: string; forced?: string });
    const done = msgs.find((m) => m.msg === 'done');
    assert.deepEqual({ first: done?.first, forced: done?.forced }, { first: 'cpu', forced: 'cpu' });
    if (!ort.listSupportedBackends().some((b) => b.name === 'cuda' && b.bundled)) {
      assert.ok(msgs.some((m) => /^execution provider cuda skipped: /.test(m.msg)), 'the skip is logged with its reason');
    }
  });
});
