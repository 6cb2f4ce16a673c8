/** The daemon's parts as tests drive them (DaemonDeps): an output the test connects, a camera whose frames it pushes. */
import type { CameraConfig } from '../../src/config/types';
import type { StatusPublisher, SupervisedCamera } from '../../src/daemon';
import type { CameraStatusMessage, RejectMessage, ResultMessage } from '../../src/pipeline/records';
import type { CameraState } from '../../src/pipeline/records';
import { FakeCamera } from './helpers';

/** An output the test connects and disconnects; records what it is given. */
export class TestOutput implements StatusPublisher {
  connected = false;
  readonly results: ResultMessage[] = [];
  readonly statuses: CameraStatusMessage[] = [];
  readonly forgotten: string[] = [];
  closed = false;
  private readonly listeners: ((up: boolean) => void)[] = [];
  private readonly waiters: (() => void)[] = [];

  setConnected(up: boolean): void {
    this.connected = up;
    for (const l of this.listeners) l(up);
    if (up) for (const w of this.waiters.splice(0)) w();
  }
  onConnection(listener: (up: boolean) => void): void {
    this.listeners.push(listener);
  }
  waitConnected(): Promise<void> {
    return this.connected ? Promise.resolve() : new Promise((r) => this.waiters.push(r));
  }
  publishResult(r: ResultMessage): boolean {
    if (!this.connected) return false;
    this.results.push(r);
    return true;
  }
  publishReject(_r: RejectMessage): boolean {
    return this.connected;
  }
  publishSnapshot(): boolean {
    return this.connected;
  }
  publishCameraStatus(s: CameraStatusMessage): void {
    this.statuses.push(s);
  }
  forgetCamera(camera: string): void {
    this.forgotten.push(camera);
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

/** A camera whose frames and state the test sets. */
export class TestCamera extends FakeCamera implements SupervisedCamera {
  state: CameraState = 'stopped';
  error: string | undefined;
  since = Date.now();
  restarts = 0;
  repeated = 0;
  lastFrameAt = 0;
  lastNewFrameAt = 0;
  constructor(readonly config: CameraConfig) {
    super(config.id);
  }
  fps(): number {
    return 0;
  }
  start(): void {
    this.state = 'streaming';
    this.emit('state', this.state, undefined);
  }
  async stop(): Promise<void> {
    this.state = 'stopped';
    this.emit('state', this.state, undefined);
  }
}

