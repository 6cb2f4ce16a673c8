/** MQTT topics (docs/mqtt.md); the payloads are the pipeline's records (src/pipeline/records.ts) as JSON. */
export type { CameraStatusMessage, ModelRef, RejectMessage, ResultMessage } from '../pipeline/records';

export const topics = (prefix: string) => ({
  status: `${prefix}/status`,
  result: (camera: string) => `${prefix}/${camera}/result`,
  reject: (camera: string) => `${prefix}/${camera}/reject`,
  snapshot: (camera: string) => `${prefix}/${camera}/snapshot`,
  cameraStatus: (camera: string) => `${prefix}/${camera}/status`,
});
