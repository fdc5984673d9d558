// A function used by calibration to time bare invocations: it loads the same runtime a worker
// does (ORT included), then echoes its payload.
import '../runtime/ort.ts';

export async function handler(event: Buffer): Promise<Buffer> {
  return event;
}
