/**
 * VGG-16 (torchvision cfg "D", no batch norm).
 *
 * Deviation from torchvision: torchvision uses AdaptiveAvgPool2d((7, 7)) and
 * a 25088 -> 4096 first classifier layer. Adaptive pooling to a fixed size has
 * no dynamic-shape ONNX equivalent, so we use GlobalAveragePool + Flatten and
 * a 512 -> 4096 first Gemm instead; this keeps the spatial input size fully
 * dynamic. Dropout layers are omitted (identity at inference).
 */
import { GraphBuilder } from '../onnx/builder.ts';
import type { ModelOpts } from './resnet.ts';

const CFG_D: (number | 'M')[] = [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 'M'];

export function buildVgg16(opts: ModelOpts = {}): Uint8Array {
  const numClasses = opts.numClasses ?? 1000;
  const g = new GraphBuilder({ name: 'vgg16', opset: opts.opset ?? 13, seed: opts.seed ?? 0 });
  let x = g.input('input', ['N', 3, 'H', 'W']);

  let cin = 3;
  let idx = 0;
  for (const v of CFG_D) {
    if (v === 'M') {
      x = g.maxPool(x, 2, 2, 0, { name: `features.${idx++}` });
    } else {
      x = g.conv(x, cin, v, 3, { pads: [1, 1, 1, 1], bias: true, name: `features.${idx++}` });
      x = g.relu(x, { name: `features.${idx++}` });
      cin = v;
    }
  }

  x = g.globalAvgPool(x, { name: 'avgpool' });
  x = g.flatten(x, { name: 'flatten' });
  x = g.gemm(x, 512, 4096, { name: 'classifier.0' });
  x = g.relu(x, { name: 'classifier.1' });
  x = g.gemm(x, 4096, 4096, { name: 'classifier.3' });
  x = g.relu(x, { name: 'classifier.4' });
  g.gemm(x, 4096, numClasses, { name: 'classifier.6', std: Math.sqrt(1 / 4096), outputName: 'logits' });
  g.output('logits', ['N', numClasses]);
  return g.build();
}
