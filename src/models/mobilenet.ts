/**
 * MobileNetV2 (width 1.0) with the torchvision topology. ReLU6 is emitted as
 * Clip(0, 6) (scalar min/max initializer inputs for opset >= 11, attributes
 * before). Dropout in the classifier is omitted (identity at inference).
 */
import { GraphBuilder } from '../onnx/builder.ts';
import type { ModelOpts } from './resnet.ts';

/** [expansion t, output channels c, repeats n, first stride s] */
const SETTINGS: [number, number, number, number][] = [
  [1, 16, 1, 1],
  [6, 24, 2, 2],
  [6, 32, 3, 2],
  [6, 64, 4, 2],
  [6, 96, 3, 1],
  [6, 160, 3, 2],
  [6, 320, 1, 1],
];

export function buildMobilenetV2(opts: ModelOpts = {}): Uint8Array {
  const numClasses = opts.numClasses ?? 1000;
  const g = new GraphBuilder({ name: 'mobilenetv2', opset: opts.opset ?? 13, seed: opts.seed ?? 0 });
  let x = g.input('input', ['N', 3, 'H', 'W']);

  const convBnAct = (
    inp: string,
    cin: number,
    cout: number,
    k: number,
    stride: number,
    group: number,
    prefix: string,
    act: boolean,
  ): string => {
    const p = (k - 1) / 2;
    let y = g.conv(inp, cin, cout, k, { stride, pads: [p, p, p, p], group, name: `${prefix}.0` });
    y = g.bn(y, cout, { name: `${prefix}.1` });
    if (act) y = g.relu6(y, { name: `${prefix}.2` });
    return y;
  };

  x = convBnAct(x, 3, 32, 3, 2, 1, 'features.0', true);
  let cin = 32;
  let fi = 1;
  for (const [t, c, n, s] of SETTINGS) {
    for (let i = 0; i < n; i++) {
      const stride = i === 0 ? s : 1;
      const hidden = cin * t;
      const p = `features.${fi++}.conv`;
      let y = x;
      let li = 0;
      if (t !== 1) y = convBnAct(y, cin, hidden, 1, 1, 1, `${p}.${li++}`, true);
      y = convBnAct(y, hidden, hidden, 3, stride, hidden, `${p}.${li++}`, true);
      // Linear bottleneck: 1x1 projection conv + BN, no activation.
      y = g.conv(y, hidden, c, 1, { name: `${p}.${li++}` });
      y = g.bn(y, c, { name: `${p}.${li++}` });
      x = stride === 1 && cin === c ? g.add(x, y, { name: `${p}.add` }) : y;
      cin = c;
    }
  }
  x = convBnAct(x, cin, 1280, 1, 1, 1, `features.${fi}`, true);

  x = g.globalAvgPool(x, { name: 'avgpool' });
  x = g.flatten(x, { name: 'flatten' });
  g.gemm(x, 1280, numClasses, { name: 'classifier.1', std: Math.sqrt(1 / 1280), outputName: 'logits' });
  g.output('logits', ['N', numClasses]);
  return g.build();
}
