/**
 * The daemon's health rules and summary line, as pure functions of a snapshot of its state: one set of rules for
 * /healthz, the console's badge and the systemd watchdog (docs/daemon.md, /healthz). The daemon (src/daemon.ts)
 * gathers the snapshot; test/unit/health-rules.test.ts checks the rules without processes.
 */
import type { CameraState } from '../pipeline/records';
import type { Health } from './http';

export interface CameraHealthView {
  id: string;
  /** The supervisor's state now (every transition). */
  state: CameraState;
  error: string | undefined;
  /** The state every output reports (docs/mqtt.md, "Status debounce"). */
  reported: { state: CameraState; error: string | undefined };
  /** Scored by a model; without one it inspects nothing. */
  hasModel: boolean;
  /** Why the camera's configured model is not in use. */
  modelError: string | undefined;
  /** When the decoder last delivered a frame, and a changed one (ms since epoch; 0 = none yet). */
  lastFrameAt: number;
  lastNewFrameAt: number;
}

export interface HealthSnapshot {
  now: number;
  ready: boolean;
  /** Some camera's model is loaded (not ready: waiting for the broker, not for the model). */
  modelsLoaded: boolean;
  mqttConnected: boolean;
  /** Pipeline started (false while starting). */
  processing: boolean;
  /** When a frame was last scored (0 = none yet). */
  lastProcessedAt: number;
  /** ingest.stallTimeoutMs. */
  stallTimeoutMs: number;
  cameras: CameraHealthView[];
  /** What the outputs say degrades the daemon (a PLC link down, Sparkplug disconnected), in output order. */
  outputsDegraded: string[];
  /** Informational fields of the body (models, outputs' link states, uptime...). */
  fields: Record<string, unknown>;
}

/**
 * Frames really being processed: one scored within the stall timeout, or a streaming (or frozen) camera sending
 * repeats of an image (never scored) whose last changed frame the pipeline has already gone past. A frozen camera
 * alone does not fail it: the systemd watchdog must not restart the daemon for a camera (docs/daemon.md,
 * "Frozen cameras"); /healthz reports it (healthOf()).
 */
export function processingHealth(s: Omit<HealthSnapshot, 'fields' | 'outputsDegraded'>): { ok: boolean; reason?: string } {
  if (!s.processing) return { ok: false, reason: 'starting' };
  const stall = s.stallTimeoutMs;
  const age = s.lastProcessedAt === 0 ? Infinity : s.now - s.lastProcessedAt;
  if (age <= stall) return { ok: true };
  for (const c of s.cameras) {
    const repeating = (c.state === 'streaming' || c.state === 'frozen') && c.lastFrameAt > c.lastNewFrameAt && s.now - c.lastFrameAt <= stall;
    if (repeating && c.lastNewFrameAt > 0 && s.lastProcessedAt >= c.lastNewFrameAt) return { ok: true };
  }
  const cams = s.cameras.map((c) => `${c.id}=${c.state}${c.error ? ` (${c.error})` : ''}`).join(', ');
  const since = s.lastProcessedAt === 0 ? 'no frame processed yet' : `no frame processed for ${Math.round(age)} ms`;
  return { ok: false, reason: `${since}; cameras: ${cams || 'none'}` };
}

/**
 * What works but not fully: a failed or stalled camera (the others still inspect), and what the outputs report (a
 * PLC link that is not up, a Sparkplug connection that is down). /healthz stays 200 with status "degraded":
 * restarting the daemon fixes none of these and would stop the cameras that work (docs/daemon.md, /healthz).
 */
export function degradedReasons(s: Pick<HealthSnapshot, 'cameras' | 'outputsDegraded'>): string[] {
  const out: string[] = [];
  for (const c of s.cameras) {
    if (!c.hasModel) continue; // without a model: unhealthy, see healthOf()
    const r = c.reported;
    if (r.state === 'failed' || r.state === 'stalled') out.push(`camera ${r.state}: ${c.id}${r.error ? ` (${r.error})` : ''}`);
  }
  out.push(...s.outputsDegraded);
  return out;
}

/** Unhealthy or not: the first rule that fails, with the body's fields. */
function rules(s: HealthSnapshot): Health {
  const base = s.fields;
  if (!s.ready) return { ok: false, reason: s.modelsLoaded ? 'not ready: waiting for the MQTT broker' : 'not ready: loading model', ...base };
  if (!s.mqttConnected) return { ok: false, reason: 'MQTT broker not connected', ...base };
  // A frozen camera looks alive (its decoder delivers) but shows an old image: not healthy, even if others are.
  // Checked before processing so that the reason reads the same whether it is the only camera or one of several
  // (alone, nothing is processed either, and between decoder restarts it delivers nothing).
  const frozen = s.cameras.filter((c) => c.state === 'frozen');
  if (frozen.length > 0) return { ok: false, reason: `camera frozen: ${frozen.map((c) => `${c.id} (${c.error ?? 'image unchanged'})`).join(', ')}`, ...base };
  const p = processingHealth(s);
  if (!p.ok) return { ok: false, reason: p.reason, ...base };
  // A camera without a model inspects nothing. One that kept its old model after a failed swap still inspects:
  // healthy, with the reason in modelErrors (update-model.sh --camera checks which model a camera runs).
  const unscored = s.cameras.filter((c) => !c.hasModel);
  if (unscored.length > 0) return { ok: false, reason: `camera without a model: ${unscored.map((c) => `${c.id} (${c.modelError ?? 'no model'})`).join(', ')}`, ...base };
  return { ok: true, ...base };
}

/**
 * /healthz and the console's badge: "unhealthy" (503: not ready, MQTT down, nothing processed, a frozen camera, a
 * camera without a model), else "degraded" (200, degradedReasons()), else "ok".
 */
export function healthOf(s: HealthSnapshot): Health {
  const h = rules(s);
  const degraded = degradedReasons(s);
  if (!h.ok) return { ...h, status: 'unhealthy', degraded };
  if (degraded.length > 0) return { ...h, status: 'degraded', reason: degraded.join('; '), degraded };
  return { ...h, status: 'ok', degraded };
}

export interface SummaryInput {
  cameras: { id: string; state: CameraState; fps: number }[];
  counters: Iterable<{ captured: number; processed: number; dropped: number; ng: number }>;
  /** Each loaded model with its inference p50 (ms) and provider. */
  models: { name: string; provider: string; p50: number }[];
  /** p50 over every model, shown when one (or none) is loaded. */
  p50All: number;
  mqttConnected: boolean;
}

/** The periodic summary line (log, systemd STATUS=, the demo's terminal). */
export function summaryLine(s: SummaryInput): string {
  const streaming = s.cameras.filter((c) => c.state === 'streaming').length;
  let captured = 0;
  let processed = 0;
  let dropped = 0;
  let ng = 0;
  for (const c of s.counters) {
    captured += c.captured;
    processed += c.processed;
    dropped += c.dropped;
    ng += c.ng;
  }
  const fps = s.cameras.reduce((a, c) => a + c.fps, 0);
  const states = s.cameras.map((c) => `${c.id}=${c.state}`).join(' ');
  const infer = s.models.length <= 1
    ? `infer p50 ${s.p50All.toFixed(1)} ms on ${s.models[0]?.provider ?? '-'}`
    : `infer p50 ${s.models.map((m) => `${m.name} ${m.p50.toFixed(1)} ms`).join(', ')} on ${[...new Set(s.models.map((m) => m.provider))].join('/')}`;
  return (
    `cameras ${streaming}/${s.cameras.length} streaming, ${fps.toFixed(1)} fps | captured ${captured} processed ${processed} ` +
    `dropped ${dropped} ng ${ng} | ${infer} | ` +
    `mqtt ${s.mqttConnected ? 'up' : 'down'} | ${states}`
  );
}
