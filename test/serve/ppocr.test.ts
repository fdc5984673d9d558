import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config.ts';
import { startLocalStack, type LocalStack } from '../../src/compose/stack.ts';
import { decodeInferResponse } from '../../src/http/oip-client.ts';
import { renderTextPage } from '../../src/bench/pages.ts';
import { uncoveredLines } from '../../src/bench/ocr.ts';
import { monolithic } from '../../src/exec/verify.ts';
import { detInput, ppocrDetModelPath } from '../../src/vision/ppocr.ts';
import { compareTensors } from '../../src/tensor/random.ts';
import { textBoxes } from '../../src/vision/db.ts';
import { asFloat32 } from '../../src/runtime/ort.ts';
import { artifactKeys } from '../../src/serve/keys.ts';
import { sha256 } from '../../src/onnx/model-io.ts';

describe('ppocr-det on the local stack', () => {
  let stack: LocalStack;
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fc-ppocr-'));
    stack = await startLocalStack(loadConfig({ PORT: '0', DATA_DIR: dir, MODEL: 'ppocr-det', WORKER_MAX_INSTANCES: '4' }));
  });
  after(async () => {
    await stack?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('reports the model\'s real inputs and outputs, -1 for dynamic axes', async () => {
    const meta = await (await fetch(`${stack.url}/v2/models/ppocr-det`)).json() as { inputs: { name: string; datatype: string; shape: number[] }[]; outputs: { datatype: string; shape: number[] }[] };
    assert.equal(meta.inputs.length, 1);
    assert.equal(meta.inputs[0].datatype, 'FP32');
    assert.deepEqual(meta.inputs[0].shape, [-1, 3, -1, -1]);
    assert.deepEqual(meta.outputs[0].shape, [-1, 1, -1, -1]);
  });

  it('finds every line of a rendered 800x600 page, boxes in the page\'s pixels; the plan is made once and checked', async () => {
    const { png, lines } = await renderTextPage(800, 600, 3);
    const post = () => fetch(`${stack.url}/v2/models/ppocr-det/infer?probability_map=true`, { method: 'POST', body: new Uint8Array(png), headers: { 'content-type': 'image/png' } });
    // Two at once: one plan is made for 608x800 (600 rounds to 608) and both use it.
    const [a, b] = await Promise.all([post(), post()]);
    for (const res of [a, b]) assert.equal(res.status, 200);
    const body = Buffer.from(await a.arrayBuffer());
    await b.arrayBuffer();
    const d = decodeInferResponse(body, Object.fromEntries(a.headers.entries()));
    const boxes = d.outputs.find((o) => o.name === 'boxes')!;
    const scores = d.outputs.find((o) => o.name === 'scores')!;
    const map = d.outputs.find((o) => o.name === 'probability_map')!;
    assert.equal(boxes.datatype, 'FP32');
    const n = boxes.shape[0];
    assert.deepEqual(boxes.shape, [n, 4, 2]);
    assert.deepEqual(scores.shape, [n]);
    assert.deepEqual(map.shape, [1, 1, 608, 800]);
    assert.ok(n >= lines.length, `${n} boxes for ${lines.length} lines`);
    assert.deepEqual(uncoveredLines(lines, boxes.data as Float32Array, n), []);
    for (let i = 0; i < boxes.data.length; i += 2) {
      assert.ok(boxes.data[i] as number >= 0 && (boxes.data[i] as number) < 800 && (boxes.data[i + 1] as number) >= 0 && (boxes.data[i + 1] as number) < 600);
    }
    // The map equals monolithic ORT's on the same input.
    const { tensor } = await detInput(png);
    const bytes = await readFile(ppocrDetModelPath());
    const ref = Object.values(await monolithic(bytes, tensor, 'x'))[0];
    const c = compareTensors(ref, { dims: map.shape, data: map.data as Float32Array });
    // The map is within float rounding of monolithic ORT (the distributed SE reductions sum in
    // another order, and the sigmoid's steep middle amplifies it: ~7e-4 on this page), and the
    // boxes, the answer, are the monolithic map's to the pixel.
    assert.ok(c.maxAbsDiff <= 2e-3, `maxAbsDiff ${c.maxAbsDiff}`);
    const mono = await textBoxes(asFloat32(ref, 'map').data, 608, 800, { width: 800, height: 600 });
    assert.equal(n, mono.length);
    mono.forEach((bx, i) => bx.points.flat().forEach((v, j) => assert.ok(Math.abs(v - (boxes.data[i * 8 + j] as number)) <= 1, `box ${i} corner value ${j}: ${v} vs ${boxes.data[i * 8 + j]}`)));
    const key = artifactKeys.plan(sha256(bytes), 'auto-608x800');
    assert.deepEqual(await stack.store.list(key.replace(/\.json$/, '')), [key], 'one verified plan, no lock left');
  });

  it('refuses sizes outside the shape policy with a 400 naming the rule', async () => {
    const data = new Float32Array(3 * 100 * 96);
    const res = await fetch(`${stack.url}/v2/models/ppocr-det/infer`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: [{ name: 'x', shape: [1, 3, 100, 96], datatype: 'FP32', data: Array.from(data) }] }),
    });
    assert.equal(res.status, 400);
    assert.match(await res.text(), /multiple of 32/);
  });
});
