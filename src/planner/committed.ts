import type { Arch } from '../models/index.ts';
import type { CutSpec, Grid } from './plan.ts';

/**
 * The plans committed under plans/: the paper's two ResNet-18 schemes. Six groups: the stem
 * (conv, BN, ReLU, max-pool), then layer1's two blocks as separate groups (the 56x56 maps are
 * where halos cost the most, so they get the finer cut), then layer2, layer3, layer4.
 * 2x2 everywhere gives 24 worker invocations; 4x4 on the four large early groups and 2x2 on
 * the two small late ones gives 4*16 + 2*4 = 72, the paper's two worker counts.
 */
export const RESNET18_CUTS: CutSpec = {
  tensors: ['maxpool_output_0', 'layer1.0.relu2_output_0', 'layer1.1.relu2_output_0', 'layer2.1.relu2_output_0', 'layer3.1.relu2_output_0'],
};

const g = (rows: number, cols: number): Grid => ({ rows, cols });

export interface CommittedPlan { file: string; arch: Arch; inputShape: number[]; grid: Grid | Grid[]; cuts: CutSpec }

export const COMMITTED_PLANS: CommittedPlan[] = [
  { file: 'plans/resnet18-224-2x2.json', arch: 'resnet18', inputShape: [1, 3, 224, 224], grid: g(2, 2), cuts: RESNET18_CUTS },
  { file: 'plans/resnet18-224-4x4.json', arch: 'resnet18', inputShape: [1, 3, 224, 224], grid: [g(4, 4), g(4, 4), g(4, 4), g(4, 4), g(2, 2), g(2, 2)], cuts: RESNET18_CUTS },
];
