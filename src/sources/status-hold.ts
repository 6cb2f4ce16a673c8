/**
 * The camera state the daemon reports (status topics, Sparkplug, /healthz, console), as opposed to every state the
 * decoder supervisor passes through. A camera that cannot connect cycles failed -> connecting -> failed at the
 * reconnect backoff; reporting each step makes retained statuses and Sparkplug alarms chatter. So once a camera has
 * failed, its reconnect attempts are reported as `failed` (the last failure's reason, since its first failure) until
 * it streams again, or until one attempt stays `connecting` longer than the hold time. docs/mqtt.md, "Status
 * debounce". The log and the etstpm_camera_state metric still show every transition.
 */
import type { CameraState } from '../pipeline/records';

export interface ReportedState {
  state: CameraState;
  error: string | undefined;
  since: number;
}

interface Held {
  error: string | undefined;
  /** When the camera first failed in this run of failures. */
  since: number;
}

export class FailedStateHold {
  private readonly held = new Map<string, Held>();
  private readonly published = new Map<string, string>();

  /** holdMs: how long a reconnect attempt may stay `connecting` before it is reported as such; 0 = no hold. */
  constructor(private readonly holdMs: number) {}

  /** The state to report for the camera's real state now. */
  view(camera: string, real: ReportedState, now = Date.now()): ReportedState {
    const h = this.held.get(camera);
    if (real.state === 'failed') {
      this.held.set(camera, { error: real.error, since: h?.since ?? real.since });
      return { state: 'failed', error: real.error, since: h?.since ?? real.since };
    }
    if (real.state === 'connecting' && h && this.holdMs > 0 && now - real.since < this.holdMs) {
      return { state: 'failed', error: h.error, since: h.since };
    }
    if (real.state !== 'connecting') this.held.delete(camera);
    return real;
  }

  /** Whether the outputs show this state and reason already (whatever published it: a state event or the timer). */
  isPublished(camera: string, r: { state: CameraState; error?: string }): boolean {
    return this.published.get(camera) === `${r.state}\u0000${r.error ?? ''}`;
  }

  /** Notes what was just published for the camera. */
  notePublished(camera: string, r: { state: CameraState; error?: string }): void {
    this.published.set(camera, `${r.state}\u0000${r.error ?? ''}`);
  }

  forget(camera: string): void {
    this.held.delete(camera);
    this.published.delete(camera);
  }
}
