/**
 * ResNet-18 with the torchvision topology (BasicBlock, layers [2, 2, 2, 2]).
 * Node and weight names follow torchvision's module names (conv1, bn1,
 * layer1.0.conv1, layer2.0.downsample.0, fc, ...).
 */
import { GraphBuilder } from '../onnx/builder.ts';

export interface ModelOpts {
  seed?: number;
  opset?: number;
  numClasses?: number;
}

export function buildResnet18(opts: ModelOpts = {}): Uint8Array {
  const numClasses = opts.numClasses ?? 1000;
  const g = new GraphBuilder({ name: 'resnet18', opset: opts.opset ?? 13, seed: opts.seed ?? 0 });
  let x = g.input('input', ['N', 3, 'H', 'W']);

  x = g.conv(x, 3, 64, 7, { stride: 2, pads: [3, 3, 3, 3], name: 'conv1' });
  x = g.bn(x, 64, { name: 'bn1' });
  x = g.relu(x, { name: 'relu' });
  x = g.maxPool(x, 3, 2, 1, { name: 'maxpool' });

  let cin = 64;
  const widths = [64, 128, 256, 512];
  widths.forEach((cout, li) => {
    for (let bi = 0; bi < 2; bi++) {
      const stride = li > 0 && bi === 0 ? 2 : 1;
      const p = `layer${li + 1}.${bi}`;
      const identity = x;
      let y = g.conv(x, cin, cout, 3, { stride, pads: [1, 1, 1, 1], name: `${p}.conv1` });
      y = g.bn(y, cout, { name: `${p}.bn1` });
      y = g.relu(y, { name: `${p}.relu1` });
      y = g.conv(y, cout, cout, 3, { pads: [1, 1, 1, 1], name: `${p}.conv2` });
      // Damped gamma on the last BN of the residual branch (in the spirit of
      // torchvision's zero_init_residual) so the trunk's activation scale does
      // not grow ~sqrt(2)x per block with random weights.
      y = g.bn(y, cout, { name: `${p}.bn2`, gamma: [0.2, 0.4] });
      let sc = identity;
      if (stride !== 1 || cin !== cout) {
        sc = g.conv(identity, cin, cout, 1, { stride, name: `${p}.downsample.0` });
        sc = g.bn(sc, cout, { name: `${p}.downsample.1` });
      }
      x = g.add(y, sc, { name: `${p}.add` });
      x = g.relu(x, { name: `${p}.relu2` });
      cin = cout;
    }
  });

  x = g.globalAvgPool(x, { name: 'avgpool' });
  x = g.flatten(x, { name: 'flatten' });
  g.gemm(x, 512, numClasses, { name: 'fc', std: Math.sqrt(1 / 512), outputName: 'logits' });
  g.output('logits', ['N', numClasses]);
  return g.build();
}
