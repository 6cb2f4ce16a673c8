/**
 * What the pipeline and the daemon need of their neighbours, and nothing more. A camera is a FrameSource; every
 * output (MQTT, Sparkplug, Modbus, the console) is an Output, built from config in src/outputs/index.ts and fanned
 * out by FanOutSink, which is the one ResultSink the pipeline talks to (docs/daemon.md, "Architecture").
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CameraStatusMessage, RejectMessage, ResultMessage, ScoredFrame } from './records';

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
  /** Every scored frame with its image and anomaly map, synchronously (absent = nobody wants them: none is built). */
  readonly scoredFrame?: (f: ScoredFrame) => void;
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

/** What an output adds to /healthz: fields of the body, and why it works but not fully (status "degraded"). */
export interface OutputHealth {
  fields?: Record<string, unknown>;
  degraded?: string[];
}

/**
 * One output: a sink for the records it cares about plus the lifecycle hooks it needs; every member is optional.
 * Results and rejects come first, in the order the outputs were built; a hook that throws is logged and skipped
 * for that output only (FanOutSink). A new output is one module in src/outputs/ and one line in
 * src/outputs/index.ts (docs/daemon.md, "Adding an output").
 */
export interface Output {
  /** Names the output in logs (default: its class name). */
  readonly name?: string;
  publishResult?(r: ResultMessage): boolean;
  publishReject?(r: RejectMessage): boolean;
  /** Outputs that take snapshots: `connected` false = not worth rendering one for this output now. */
  readonly connected?: boolean;
  publishSnapshot?(camera: string, data: Buffer, contentType: string, user: SnapshotProperties): boolean;
  /** Every scored frame with its image and anomaly map; `map` is only valid during the call. */
  scoredFrame?(f: ScoredFrame): void;
  /** Models warm, broker connected: the daemon reported READY. */
  ready?(): void;
  health?(): OutputHealth;
  /** Fields this output adds to a camera's status (Modbus: `plc`, its reject output). */
  cameraStatusExtras?(camera: string): Partial<CameraStatusMessage>;
  /** A camera was started, with its first status. */
  cameraAdded?(s: CameraStatusMessage): void;
  /** A camera's status: on every reported state change and periodically (status.intervalMs). */
  publishCameraStatus?(s: CameraStatusMessage): void;
  /** A camera is being removed: called before its decoder stops. */
  cameraRemoved?(camera: string): void;
  /** A removed camera's last status was published: clear what the output keeps for it (MQTT: the retained status). */
  forgetCamera?(camera: string): void;
  /** HTTP routes on the daemon's server (the console): true when this output answered the request. */
  handleHttp?(req: IncomingMessage, res: ServerResponse): boolean;
  /** Stop: final statuses are the cameras' last; bounded by timeoutMs. */
  close?(finalStatuses: CameraStatusMessage[], timeoutMs: number): Promise<void>;
}

/** Optional second face of an output: per-camera status (MQTT keeps it retained; others may show or map it). */
export interface CameraStatusSink {
  publishCameraStatus(s: CameraStatusMessage): void;
  /** A camera was removed: clear what the sink holds for it. */
  forgetCamera(camera: string): void;
}
