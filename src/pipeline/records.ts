/**
 * The records the frame path hands to its outputs: a result and a reject per scored frame, a camera's status, and
 * the scored frame itself (image and anomaly map) for outputs that show or keep images. Plain data, no behaviour:
 * every output (src/outputs/) and every camera source depends on these, they depend on nothing above them.
 * The MQTT payloads are these records as JSON (docs/mqtt.md).
 */
import type { DriftState } from '../score/drift';
import type { Normalization, Verdict } from '../score/normalize';
import type { ActiveThreshold } from '../score/threshold';

export type CameraState = 'connecting' | 'streaming' | 'stalled' | 'frozen' | 'failed' | 'stopped';

export const CAMERA_STATES: readonly CameraState[] = ['connecting', 'streaming', 'stalled', 'frozen', 'failed', 'stopped'];

export interface ModelRef {
  name: string;
  version: string;
}

/** One frame's verdict: the part every scored-frame record shares. */
export interface FrameVerdict {
  camera: string;
  seq: number;
  capturedAt: number;
  score: number;
  rawScore: number;
  verdict: Verdict;
}

export interface ResultMessage extends FrameVerdict {
  latencyMs: number;
  model: ModelRef;
}

export interface RejectMessage {
  camera: string;
  seq: number;
  capturedAt: number;
  deadline: number;
  score: number;
  /** The model that scored the frame (the camera's own, docs/configuration.md "One model per camera"). */
  model: ModelRef;
}

/** A camera's Modbus reject output as its status reports it (docs/sparkplug.md, "Modbus TCP reject output"). */
export interface RejectOutputStatus {
  plc: string;
  link: string;
  type: 'coil' | 'register';
  address: number;
  written: number;
  dropped: number;
  lastError?: string;
}

export interface CameraStatusMessage {
  camera: string;
  state: CameraState;
  fps: number;
  captured: number;
  processed: number;
  dropped: number;
  /** RTSP frames identical to the previous one, not scored. */
  repeated: number;
  provider: string;
  /** The camera's model now; {"name": "", "version": ""} while it has none (see modelError). */
  model: ModelRef;
  error?: string;
  /** Why the camera's configured model is not in use: it never loaded (no model, not scoring) or a new one failed
   *  to load at SIGHUP (the camera keeps scoring with `model`). */
  modelError?: string;
  since: number;
  /** The camera's Modbus reject output, when configured (docs/sparkplug.md). */
  plc?: RejectOutputStatus;
  /** The raw threshold the camera is judged at and where it comes from (docs/mqtt.md); absent without a model. */
  threshold?: ActiveThreshold;
  /** Share of recent OK frames above the calibration quantile (docs/daemon.md, "Drift"); absent without a model. */
  drift?: DriftState;
}

/** What a scored frame needs to be shown or saved: the model's name, input size and normalisation. */
export interface ResultModel {
  name: string;
  version: string;
  width: number;
  height: number;
  normalization: Normalization;
}

/** One scored frame, handed over synchronously by the pipeline. `map` is a view the caller reuses: copy to keep. */
export interface ScoredFrame extends FrameVerdict {
  /** RGB24 as the model saw it (after ROI and scaling), width*height*3; a fresh Buffer per frame, safe to keep. */
  frame: Buffer;
  /** Raw anomaly map, width*height; only valid during the call. */
  map: Float32Array;
  /** The model that scored it: its geometry (frame and map size) and normalisation (overlays). */
  model: ResultModel;
}
