/** The SIGHUP planner (src/reload/plan.ts) without processes or models: which cameras stop, start, restart or swap. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CameraConfig } from '../../src/config/types';
import { ModelOutcome, planModels, planReload, RunningCamera } from '../../src/reload/plan';

const cam = (id: string, over: Partial<CameraConfig> = {}): CameraConfig => ({
  id, url: `rtsp://cam/${id}`, fps: 0, roi: null, transport: 'tcp', decoder: 'ffmpeg', model: null, ...over,
});
/** Model folders and what they hold now: /m/a and /m/b unchanged, /m/new changed content, /m/gone unreadable. */
const keys: Record<string, string | null> = { '/m/a': 'a@1', '/m/b': 'b@1', '/m/new': 'new@2', '/m/gone': null };
const keyOf = (dir: string) => keys[dir] ?? null;
const running = (list: Array<[CameraConfig, string | null]>) => new Map<string, RunningCamera>(list.map(([c, k]) => [c.id, { config: c, modelKey: k }]));
const size = (w: number) => ({ width: w, height: w });

describe('reload plan', () => {
  it('added, removed, changed (decoder setting), threshold-only, kept: each in its list', () => {
    const now = running([[cam('keep'), 'a@1'], [cam('gone'), 'a@1'], [cam('url'), 'a@1'], [cam('thr', { threshold: 0.2 }), 'a@1']]);
    const next = [cam('keep'), cam('url', { url: 'rtsp://other' }), cam('thr', { threshold: 0.3 }), cam('new')];
    const p = planReload(now, next, '/m/a', keyOf);
    assert.deepEqual(p.removed, ['gone']);
    assert.deepEqual(p.added, ['new']);
    assert.deepEqual(p.changed, ['url']);
    assert.deepEqual(p.thresholdOnly, ['thr']);
    assert.deepEqual(p.keepModel, ['keep', 'url', 'thr']);
    assert.deepEqual(p.loadModel, [{ id: 'new', dir: '/m/a' }]);
    const m = planModels(p, [{ id: 'new', loaded: size(64), current: null, running: false }]);
    assert.deepEqual(m, { swapped: [], inPlace: [], modelFailed: [], restart: ['url', 'new'] });
  });

  it('another model folder or new content behind the same folder: loaded; same size swaps in place, another restarts', () => {
    const now = running([[cam('x', { model: '/m/b' }), 'b@1'], [cam('y', { model: '/m/new' }), 'new@1'], [cam('z'), 'a@1']]);
    const next = [cam('x', { model: '/m/a' }), cam('y', { model: '/m/new' }), cam('z', { model: '/m/b' })];
    const p = planReload(now, next, '/m/a', keyOf);
    assert.deepEqual(p.changed, [], 'a model change is not a decoder change');
    assert.deepEqual(p.loadModel, [{ id: 'x', dir: '/m/a' }, { id: 'y', dir: '/m/new' }, { id: 'z', dir: '/m/b' }]);
    const outcomes: ModelOutcome[] = [
      { id: 'x', loaded: size(64), current: size(64), running: true },
      { id: 'y', loaded: size(128), current: size(64), running: true },
      { id: 'z', loaded: size(64), current: size(64), running: true },
    ];
    assert.deepEqual(planModels(p, outcomes), { swapped: ['x', 'y', 'z'], inPlace: ['x', 'z'], modelFailed: [], restart: ['y'] });
  });

  it('a model that fails: the camera keeps its model; one without a model is restarted to show why, or to start once it loads', () => {
    const now = running([[cam('has', { model: '/m/gone' }), 'old@1'], [cam('none', { model: '/m/gone' }), null], [cam('fixed', { model: '/m/a' }), null]]);
    const next = [cam('has', { model: '/m/gone' }), cam('none', { model: '/m/gone' }), cam('fixed', { model: '/m/a' }), cam('newbad', { model: '/m/gone' })];
    const p = planReload(now, next, '/m/a', keyOf);
    assert.deepEqual(p.loadModel.map((l) => l.id), ['has', 'none', 'fixed', 'newbad'], 'an unreadable folder is tried (and reported) again');
    const m = planModels(p, [
      { id: 'has', loaded: null, current: size(64), running: true },
      { id: 'none', loaded: null, current: null, running: true },
      { id: 'fixed', loaded: size(64), current: null, running: true },
      { id: 'newbad', loaded: null, current: null, running: false },
    ]);
    assert.deepEqual(m.modelFailed, ['has', 'none', 'newbad']);
    assert.deepEqual(m.swapped, []);
    assert.deepEqual(m.restart, ['newbad', 'none', 'fixed']);
  });

  it('a changed camera whose model is swapped too restarts rather than swapping in place', () => {
    const now = running([[cam('c', { model: '/m/b' }), 'b@1']]);
    const p = planReload(now, [cam('c', { model: '/m/a', fps: 5 })], '/m/a', keyOf);
    assert.deepEqual(p.changed, ['c']);
    assert.deepEqual(planModels(p, [{ id: 'c', loaded: size(64), current: size(64), running: true }]), { swapped: ['c'], inPlace: [], modelFailed: [], restart: ['c'] });
  });
});
