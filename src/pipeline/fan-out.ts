/**
 * Several outputs behind the one ResultSink the pipeline talks to, so that adding an output adds a sink, not a
 * branch in the pipeline. The primary sink (MQTT) answers for the pipeline's accounting: etstpm_mqtt_unsent_total
 * and the frame-to-publish latency stay about MQTT; the other sinks account for their own losses. A sink that
 * throws is logged and skipped, so one faulty output cannot stop the frame path of the others.
 */
import type { Logger } from '../log';
import type { RejectMessage, ResultMessage } from './records';
import type { ResultSink, SnapshotProperties } from './interfaces';

export class FanOutSink implements ResultSink {
  constructor(
    private readonly primary: ResultSink,
    private readonly others: readonly ResultSink[],
    private readonly log: Logger,
  ) {}

  /** True while any sink can deliver: a snapshot is worth rendering if one of them takes it. */
  get connected(): boolean {
    return this.primary.connected || this.others.some((s) => s.connected);
  }

  publishResult(r: ResultMessage): boolean {
    const sent = this.primary.publishResult(r);
    this.each('result', (s) => s.publishResult(r));
    return sent;
  }

  publishReject(r: RejectMessage): boolean {
    const sent = this.primary.publishReject(r);
    this.each('reject', (s) => s.publishReject(r));
    return sent;
  }

  publishSnapshot(camera: string, data: Buffer, contentType: string, user: SnapshotProperties): boolean {
    const sent = this.primary.publishSnapshot(camera, data, contentType, user);
    this.each('snapshot', (s) => s.connected && s.publishSnapshot(camera, data, contentType, user));
    return sent;
  }

  private each(kind: string, send: (s: ResultSink) => boolean): void {
    for (const s of this.others) {
      try {
        send(s);
      } catch (err) {
        this.log.warn({ sink: s.constructor.name, kind, err: (err as Error).message }, 'output failed; message skipped for it');
      }
    }
  }
}
