/**
 * Every output behind the one ResultSink the pipeline talks to, and the daemon's one handle on all of them: adding
 * an output adds an entry in src/outputs/index.ts, not a branch in the pipeline or the daemon. The primary output
 * (MQTT) answers for the pipeline's accounting: etstpm_mqtt_unsent_total and the frame-to-publish latency stay about
 * MQTT; the others account for their own losses. Outputs are called in the order they were built. A hook that
 * throws is logged and skipped for that output, so one faulty output cannot stop the frame path of the others;
 * the primary's result and reject calls are not guarded (the MQTT publisher never throws for delivery).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../log';
import type { Output, OutputHealth, ResultSink, SnapshotProperties } from './interfaces';
import type { CameraStatusMessage, RejectMessage, ResultMessage, ScoredFrame } from './records';

export class FanOutSink implements ResultSink {
  readonly scoredFrame?: (f: ScoredFrame) => void;
  private readonly others: readonly Output[];

  constructor(
    private readonly primary: ResultSink & Output,
    /** Every output in call order, the primary among them (added first when absent). */
    readonly outputs: readonly Output[],
    private readonly log: Logger,
  ) {
    if (!outputs.includes(primary)) this.outputs = [primary, ...outputs];
    this.others = this.outputs.filter((o) => o !== primary);
    // Only when someone takes them: the pipeline then builds no scored-frame record at all.
    if (this.outputs.some((o) => o.scoredFrame)) this.scoredFrame = (f) => this.each('scored frame', (o) => o.scoredFrame?.(f));
  }

  /** True while any snapshot-taking output can deliver: a snapshot is worth rendering if one of them takes it. */
  get connected(): boolean {
    return this.primary.connected || this.others.some((o) => o.publishSnapshot !== undefined && o.connected === true);
  }

  publishResult(r: ResultMessage): boolean {
    return this.deliver('result', () => this.primary.publishResult(r), (o) => o.publishResult?.(r));
  }

  publishReject(r: RejectMessage): boolean {
    return this.deliver('reject', () => this.primary.publishReject(r), (o) => o.publishReject?.(r));
  }

  publishSnapshot(camera: string, data: Buffer, contentType: string, user: SnapshotProperties): boolean {
    return this.deliver('snapshot', () => this.primary.publishSnapshot(camera, data, contentType, user),
      (o) => o.connected === true && o.publishSnapshot?.(camera, data, contentType, user));
  }

  /** One record to every output in order; the primary's answer (unguarded) is the pipeline's. */
  private deliver(kind: string, primary: () => boolean, other: (o: Output) => unknown): boolean {
    let sent = false;
    for (const o of this.outputs) {
      if (o === this.primary) sent = primary();
      else this.one(o, kind, () => other(o));
    }
    return sent;
  }

  ready(): void {
    this.each('ready', (o) => o.ready?.());
  }

  /** Every output's /healthz fields, and their degraded reasons in output order. */
  health(): Required<OutputHealth> {
    const out = { fields: {} as Record<string, unknown>, degraded: [] as string[] };
    this.each('health', (o) => {
      const h = o.health?.();
      if (!h) return;
      Object.assign(out.fields, h.fields);
      out.degraded.push(...(h.degraded ?? []));
    });
    return out;
  }

  cameraStatusExtras(camera: string): Partial<CameraStatusMessage> {
    const out: Partial<CameraStatusMessage> = {};
    this.each('status extras', (o) => Object.assign(out, o.cameraStatusExtras?.(camera)));
    return out;
  }

  cameraAdded(s: CameraStatusMessage): void {
    this.each('camera added', (o) => o.cameraAdded?.(s));
  }

  publishCameraStatus(s: CameraStatusMessage): void {
    this.each('camera status', (o) => o.publishCameraStatus?.(s));
  }

  cameraRemoved(camera: string): void {
    this.each('camera removed', (o) => o.cameraRemoved?.(camera));
  }

  forgetCamera(camera: string): void {
    this.each('forget camera', (o) => o.forgetCamera?.(camera));
  }

  handleHttp(req: IncomingMessage, res: ServerResponse): boolean {
    return this.outputs.some((o) => o.handleHttp?.(req, res) ?? false);
  }

  /** Closes every output at once; each is bounded by timeoutMs (a failure is logged). */
  async close(finalStatuses: CameraStatusMessage[], timeoutMs: number): Promise<void> {
    await Promise.all(this.outputs.map(async (o) => {
      try {
        await o.close?.(finalStatuses, timeoutMs);
      } catch (err) {
        this.log.warn({ output: nameOf(o), err: (err as Error).message }, 'output close failed');
      }
    }));
  }

  private each(kind: string, call: (o: Output) => unknown): void {
    for (const o of this.outputs) this.one(o, kind, () => call(o));
  }

  private one(o: Output, kind: string, call: () => unknown): void {
    try {
      call();
    } catch (err) {
      this.log.warn({ sink: nameOf(o), kind, err: (err as Error).message }, 'output failed; message skipped for it');
    }
  }
}

function nameOf(o: Output): string {
  return o.name ?? o.constructor.name;
}
