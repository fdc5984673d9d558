// npm run infer -- --model resnet18 (--image <file> | --random [--batch N] [--seed N]) [--url http://127.0.0.1:9000]
// npm run infer -- --model ppocr-det --image page.png [--overlay out.png]: prints the text boxes and
// writes the page with them drawn (default <image>.boxes.png).

import { parseArgs } from 'node:util';
import { decodeInferResponse, encodeInferRequest } from '../src/http/oip-client.ts';
import { randomTensor } from '../src/tensor/random.ts';
import { runCli, UsageError, readInput } from '../src/cli/common.ts';
import sharp from 'sharp';

const TYPES: Record<string, string> = { jpg: 'image/jpeg', jpeg: 'image/jpeg', png: 'image/png', webp: 'image/webp' };

runCli(async () => {
  const { values } = parseArgs({ options: { model: { type: 'string', default: 'resnet18' }, image: { type: 'string' }, random: { type: 'boolean' }, batch: { type: 'string', default: '1' }, seed: { type: 'string', default: '1' }, url: { type: 'string' }, overlay: { type: 'string' } } });
  const url = values.url ?? `http://127.0.0.1:${process.env.PORT ?? 9000}`;
  if (!values.image && !values.random) throw new UsageError('usage: npm run infer -- --model <name> (--image <file> | --random [--batch N])');
  let res: Response;
  const t0 = performance.now();
  try {
    if (values.image) {
      const body = await readInput(values.image, 'image');
      const type = TYPES[values.image.split('.').pop()!.toLowerCase()] ?? 'application/octet-stream';
      res = await fetch(`${url}/v2/models/${values.model}/infer`, { method: "POST", body: new Uint8Array(body), headers: { "content-type": type } });
    } else {
      const meta = await fetch(`${url}/v2/models/${values.model}`);
      if (!meta.ok) throw new UsageError(`${url}: ${meta.status} ${await meta.text()}`);
      const m = (await meta.json()) as { inputs: { name: string; shape: number[] }[]; outputs: { name: string }[] };
      const shape = m.inputs[0].shape.map((d, i) => (d < 0 ? (i === 0 ? Number(values.batch) : 1) : d));
      // Dynamic H and W: a size every shape policy here accepts (a multiple of 32).
      if (m.inputs[0].shape.length === 4) for (const i of [2, 3]) if (m.inputs[0].shape[i] < 0) shape[i] = 256;
      const x = randomTensor(shape, Number(values.seed));
      const enc = encodeInferRequest({ inputs: [{ name: m.inputs[0].name, shape, data: x.data }], outputs: [{ name: m.outputs[0].name, parameters: { binary_data: true } }] }, { binary: true });
      res = await fetch(`${url}/v2/models/${values.model}/infer`, { method: "POST", body: new Uint8Array(enc.body), headers: enc.headers });
    }
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`cannot reach ${url} (is \`npm start\` running?): ${(e as Error).message}`);
  }
  const body = Buffer.from(await res.arrayBuffer());
  const ms = performance.now() - t0;
  if (!res.ok) {
    console.error(`HTTP ${res.status}: ${body.toString('utf8')}`);
    return 1;
  }
  const headers = Object.fromEntries(res.headers.entries());
  const decoded = decodeInferResponse(body, headers);
  const boxes = decoded.outputs.find((o) => o.name === 'boxes');
  if (boxes && values.image) {
    const scores = decoded.outputs.find((o) => o.name === 'scores')!.data as Float32Array;
    const b = boxes.data as Float32Array;
    const polys: string[] = [];
    for (let i = 0; i < boxes.shape[0]; i++) {
      const pts = Array.from({ length: 4 }, (_, k) => [b[i * 8 + 2 * k], b[i * 8 + 2 * k + 1]]);
      console.log(`box ${i}: ${pts.map(([x, y]) => `(${x},${y})`).join(' ')} score ${scores[i].toFixed(3)}`);
      polys.push(`<polygon points="${pts.map(([x, y]) => `${x},${y}`).join(' ')}" fill="none" stroke="red" stroke-width="2"/>`);
    }
    const img = sharp(await readInput(values.image, 'image')).rotate();
    const { width, height } = await img.metadata();
    const out = values.overlay ?? values.image.replace(/\.[^./]+$/, '') + '.boxes.png';
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${polys.join('')}</svg>`;
    await img.composite([{ input: Buffer.from(svg), top: 0, left: 0 }]).png().toFile(out);
    console.log(`${boxes.shape[0]} text boxes; overlay written to ${out}`);
    console.log(`round trip ${(performance.now() - t0).toFixed(0)} ms`);
    console.log('cost:', JSON.stringify(decoded.parameters?.cost, null, 2));
    return 0;
  }
  for (const o of decoded.outputs) {
    if (o.data instanceof Float32Array) {
      let max = -Infinity; let arg = -1;
      o.data.forEach((v, i) => { if (v > max) { max = v; arg = i; } });
      console.log(`output ${o.name} [${o.shape.join(',')}]: argmax ${arg} (${max.toFixed(4)})`);
    }
  }
  const params = decoded.parameters ?? {};
  if (params.top_k) console.log('top-k:', JSON.stringify(params.top_k));
  console.log(`round trip ${ms.toFixed(0)} ms`);
  console.log('cost:', JSON.stringify(params.cost, null, 2));
  return 0;
});
