/** MQTT topics and payloads (docs/mqtt.md). */
import type { CameraState } from '../sources/camera';
import type { Verdict } from '../score/normalize';
import type { RejectOutputStatus } from '../modbus/reject-output';
import type { DriftState } from '../score/drift';
import type { ActiveThreshold } from '../score/threshold';

export interface ModelRef {
  name: string;
  version: string;
}

export interface ResultMessage {
  camera: string;
  seq: number;
  capturedAt: number;
  score: number;
  rawScore: number;
  verdict: Verdict;
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
  /** The camera's Modbus reject output, when configured (issue 10). */
  plc?: RejectOutputStatus;
  /** The raw threshold the camera is judged at and where it comes from (docs/mqtt.md); absent without a model. */
  threshold?: ActiveThreshold;
  /** Share of recent OK frames above the calibration quantile (docs/daemon.md, "Drift"); absent without a model. */
  drift?: DriftState;
}

export const topics = (prefix: string) => ({
  status: `${prefix}/status`,
  result: (camera: string) => `${prefix}/${camera}/result`,
  reject: (camera: string) => `${prefix}/${camera}/reject`,
  snapshot: (camera: string) => `${prefix}/${camera}/snapshot`,
  cameraStatus: (camera: string) => `${prefix}/${camera}/status`,
});
