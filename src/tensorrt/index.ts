// TensorRT support for the daemon: engine cache key, provider options, platform probe, provider plan.
// The daemon's session loader (src/infer/) calls resolveTensorRt + planProviders; the engine build CLI is
// engine-build.ts.
export * from './cache-key';
export * from './engine-cache';
export * from './platform';
export * from './provider-options';
export * from './provider-plan';
