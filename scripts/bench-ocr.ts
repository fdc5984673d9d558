// npx tsx scripts/bench-ocr.ts [--sizes 1600x1200,3200x2400] [--reps 3] [--workers 4]
//
// Rendered text pages through ppocr-det on the local stack (gateway, handler, master and worker
// processes, filesystem store), over HTTP with image bodies: the first request of each size makes
// and checks its plan; then `--reps` warm requests. Every page's boxes must cover every text
// line. Monolithic ORT (one warm session, both cores) runs the same preprocessed input in this
// process, interleaved, for the latency ratio.
import { parseArgs } from 'node:util';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { runCli } from '../src/cli/common.ts';
import { loadConfig } from '../src/config.ts';
import { startLocalStack } from '../src/compose/stack.ts';
import { decodeInferResponse } from '../src/http/oip-client.ts';
import { renderTextPage } from '../src/bench/pages.ts';
import { uncoveredLines } from '../src/bench/ocr.ts';
import { detInput, ppocrDetModelPath } from '../src/vision/ppocr.ts';
import { createSession } from '../src/runtime/ort.ts';
import { compareTensors } from '../src/tensor/random.ts';
import { textBoxes } from '../src/vision/db.ts';

/** Same boxes as DB post-processing of the monolithic map, each corner within a pixel. */
const sameBoxes = (mono: { points: [number, number][] }[], got: Float32Array) =>
  mono.length * 8 === got.length && mono.every((b, i) => b.points.flat().every((v, j) => Math.abs(v - got[i * 8 + j]) <= 1));

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

runCli(async () => {
  const { values } = parseArgs({ options: { sizes: { type: 'string', default: '1600x1200,3200x2400' }, reps: { type: 'string', default: '3' }, workers: { type: 'string', default: '4' } } });
  const dir = await mkdtemp(join(tmpdir(), 'bench-ocr-'));
  const stack = await startLocalStack(loadConfig({ ...process.env, PORT: '0', DATA_DIR: dir, MODEL: 'ppocr-det', WORKER_MAX_INSTANCES: values.workers, LOG_LEVEL: 'warn' }));
  const mono = await createSession(new Uint8Array(await readFile(ppocrDetModelPath())), 'ppocr-det monolithic');
  const rows: string[] = [];
  let failed = 0;
  try {
    for (const size of values.sizes.split(',')) {
      const [w, h] = size.split('x').map(Number);
      const { png, lines } = await renderTextPage(w, h, 7);
      // The map comes back only while it fits a function's response (32 MB, base64): up to ~2 M pixels.
      const withMap = w * h <= 2_000_000;
      const post = async () => {
        const t0 = performance.now();
        const send = () => fetch(`${stack.url}/v2/models/ppocr-det/infer${withMap ? '?probability_map=true' : ''}`, { method: 'POST', body: new Uint8Array(png), headers: { 'content-type': 'image/png' } });
        let res: Response;
        try {
          res = await send();
        } catch (e) {
          // A kept-alive socket the server closed just as this request went out (idle past its
          // keep-alive timeout while the page was rendered): the request never reached it.
          if (!/ECONNRESET/.test(String((e as Error).cause))) throw new Error(`${size}: ${(e as Error).message}: ${String((e as Error).cause)}`, { cause: e });
          res = await send();
        }
        const body = Buffer.from(await res.arrayBuffer());
        const ms = performance.now() - t0;
        if (res.status !== 200) throw new Error(`${size}: HTTP ${res.status}: ${body.toString('utf8').slice(0, 400)}`);
        return { ms, d: decodeInferResponse(body, Object.fromEntries(res.headers.entries())) };
      };
      const first = await post();
      const { tensor } = await detInput(png);
      const http: number[] = [];
      const handler: number[] = [];
      const monoMs: number[] = [];
      let last = first;
      await mono.run({ x: tensor }); // warm
      for (let i = 0; i < Number(values.reps); i++) {
        last = await post();
        http.push(last.ms);
        handler.push((last.d.parameters?.cost as { ms: { total: number } }).ms.total);
        const t0 = performance.now();
        await mono.run({ x: tensor });
        monoMs.push(performance.now() - t0);
      }
      const boxes = last.d.outputs.find((o) => o.name === 'boxes')!;
      const map = last.d.outputs.find((o) => o.name === 'probability_map');
      const missed = uncoveredLines(lines, boxes.data as Float32Array, boxes.shape[0]);
      failed += missed.length;
      const ref = Object.values(await mono.run({ x: tensor }))[0];
      const diff = map ? compareTensors(ref, { dims: map.shape, data: map.data as Float32Array }) : undefined;
      const [, , mh, mw] = ref.dims;
      const monoBoxes = await textBoxes(ref.data as Float32Array, mh, mw, { width: w, height: h });
      const cost = last.d.parameters?.cost as { invocations: { worker: number }; peakWorkerRssMb: number; store: { bytesRead: number; bytesWritten: number } };
      rows.push(`| ${w}x${h} (input ${mh}x${mw}) | ${lines.length} | ${boxes.shape[0]} (monolithic map: ${monoBoxes.length}) | ${lines.length - missed.length}/${lines.length} | ${(first.ms / 1000).toFixed(1)} s | ${median(http).toFixed(0)} / ${median(handler).toFixed(0)} ms | ${median(monoMs).toFixed(0)} ms | ${(median(http) / median(monoMs)).toFixed(2)}x / ${(median(handler) / median(monoMs)).toFixed(2)}x | ${cost.invocations.worker} | ${cost.peakWorkerRssMb} MB | ${diff ? diff.maxAbsDiff.toExponential(1) : 'not returned'} | ${sameBoxes(monoBoxes, boxes.data as Float32Array) ? 'yes' : 'NO'} |`);
      console.log(rows[rows.length - 1]);
      for (const l of missed) console.log(`  missed line at y=${l.y}: ${l.text}`);
    }
  } finally {
    await mono.release();
    await stack.close();
    await rm(dir, { recursive: true, force: true });
  }
  console.log('\n| page | lines | boxes | lines covered | first request (plan + check + run) | warm latency: HTTP / handler (median) | monolithic ORT | x monolithic: HTTP / handler | worker invocations | peak worker RSS | map max abs diff | boxes = monolithic map\'s (1 px) |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) console.log(r);
  return failed ? 1 : 0;
});
