/** Errors of the telemetry area (metrics, traces, logs). */
export class TelemetryError extends Error {
  override name = 'TelemetryError';
}
