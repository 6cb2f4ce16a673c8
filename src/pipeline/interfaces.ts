/**
 * What the pipeline needs of its neighbours, and nothing more. A camera is a FrameSource; an output (MQTT today;
 * Sparkplug, Modbus or the console next) is a ResultSink. A new output implements ResultSink and is handed to the
 * daemon; the pipeline does not change (docs/daemon.md, "Architecture").
 */
import type { CameraStatusMessage, RejectMessage, ResultMessage } from './records';

/** MQTT 5 user properties of a snapshot (camera, seq, score, verdict), also useful as metadata to other sinks. */
export type SnapshotProperties = Record<string, string>;

/**
 * Where verdicts go. Every method returns whether the message was handed on; a sink never queues while it cannot
 * deliver (a stale verdict is worse than none) and never throws for a delivery problem.
 */
export interface ResultSink {
  /** False while nothing can be delivered: the pipeline then does not render snapshots for this sink. */
  readonly connected: boolean;
  publishResult(r: ResultMessage): boolean;
  publishReject(r: RejectMessage): boolean;
  publishSnapshot(camera: string, data: Buffer, contentType: string, user: SnapshotProperties): boolean;
}

export type FrameListener = (frame: Buffer, capturedAt: number) => void;

/** A camera as the pipeline sees it: frames of the model's input size (RGB, H*W*3 bytes) and a running count. */
export interface FrameSource {
  readonly id: string;
  /** Frames delivered since start; the pipeline uses it as the seq of the frame just emitted. */
  readonly captured: number;
  on(event: 'frame', listener: FrameListener): unknown;
  off(event: 'frame', listener: FrameListener): unknown;
}

/** Optional second face of an output: per-camera status (MQTT keeps it retained; others may show or map it). */
export interface CameraStatusSink {
  publishCameraStatus(s: CameraStatusMessage): void;
  /** A camera was removed: clear what the sink holds for it. */
  forgetCamera(camera: string): void;
}

export function isCameraStatusSink<T extends object>(s: T): s is T & CameraStatusSink {
  const c = s as Partial<CameraStatusSink>;
  return typeof c.publishCameraStatus === 'function' && typeof c.forgetCamera === 'function';
}
