/**
 * A configured camera whose model could not be loaded: it is never opened (its decoder would need the model's input
 * size) and stays `failed` with the reason, so statuses, /healthz, Sparkplug and the console show it like any other
 * camera while the daemon keeps scoring the others (docs/configuration.md, "One model per camera").
 */
import { EventEmitter } from 'node:events';
import type { CameraConfig } from '../config/types';
import type { CameraState } from '../pipeline/records';

export class UnscoredCamera extends EventEmitter {
  readonly state: CameraState = 'failed';
  readonly since = Date.now();
  readonly captured = 0;
  readonly restarts = 0;
  readonly repeated = 0;
  readonly lastFrameAt = 0;
  readonly lastNewFrameAt = 0;

  constructor(
    readonly config: CameraConfig,
    readonly error: string,
  ) {
    super();
  }

  get id(): string {
    return this.config.id;
  }

  fps(): number {
    return 0;
  }

  /** Announces the state once, as a real camera does when it starts. */
  start(): void {
    this.emit('state', this.state, this.error);
  }

  async stop(): Promise<void> {
    // nothing was opened
  }
}
