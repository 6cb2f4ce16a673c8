/** What the operator console takes from the daemon: plain records, no daemon classes (src/console/README in docs/console.md). */
import type { DriftState } from '../score/drift';
import type { ResultModel, ScoredFrame } from '../pipeline/records';
import type { Normalization } from '../score/normalize';
import type { ActiveThreshold } from '../score/threshold';

/** One scored frame (src/pipeline/records.ts); `map` is only valid during the call. */
export type ConsoleResult = ScoredFrame;
export type { ResultModel };

/** The model's geometry and normalisation (overlays) and what the overview shows about it. */
export interface ConsoleModel {
  width: number;
  height: number;
  normalization: Normalization;
  name: string;
  version: string;
  /** e.g. "ET-STPM (etstpm-model/1), threshold normal-quantile" */
  method: string;
}

/** One camera in the overview: the camera status topic's payload plus the NG count. */
export interface ConsoleCameraStatus {
  camera: string;
  state: string;
  fps: number;
  captured: number;
  processed: number;
  dropped: number;
  ng: number;
  provider: string;
  model: { name: string; version: string };
  since: number;
  error?: string;
  threshold?: ActiveThreshold;
  drift?: DriftState;
}

/** Live data the daemon provides on request (never pushed, so it costs nothing while no one looks). */
export interface ConsoleSources {
  /** /healthz's object. */
  health(): { ok: boolean; reason?: string; [k: string]: unknown };
  cameras(): ConsoleCameraStatus[];
  /**
   * A run-time threshold for a camera (null = back to config/model; docs/configuration.md, "Threshold override");
   * throws ThresholdError naming the camera and value. `via` says who asked (logged). Absent = not offered.
   */
  setThreshold?(camera: string, value: unknown, via: string): ActiveThreshold;
}

export interface CaptureLimits {
  /** Dataset root: frames go to <root>/<camera>/train/good/ (the layout `etstpm train --data root --category camera` reads). */
  root: string;
  everyN: number;
  maxImages: number;
  maxBytes: number;
  /** Refuse to start, and stop, when the file system has less free space than this. */
  minFreeBytes: number;
}

export interface ConsoleOptions {
  enabled: boolean;
  /** Bearer token for control actions; "" = none. Never logged, never sent to the page. */
  token: string;
  /** Address the HTTP server is bound to (decides whether control needs the token). */
  host: string;
  /** More Host names the console answers to (console.allowedHosts; host-check.ts). */
  allowedHosts?: string[];
  ngHistory: number;
  trendSeconds: number;
  reviewDir: string;
  capture: CaptureLimits;
  mqttCommands: boolean;
}
