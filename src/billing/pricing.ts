/**
 * Billing: what FC charges for a set of invocations, at its published pay-as-you-go prices. Pure,
 * below serve, so that the cost model and the planner price plans with the same rule the handler
 * bills requests with.
 */
import { z } from 'zod';

/** FC 3.0 pay-as-you-go compute units (../shared/docs/function-compute.md). */
export const FC_PRICING = {
  cuPerInvocation: 75 / 10_000,
  cuPerVcpuSecond: 1,
  cuPerGbSecond: 0.15,
  usdPerCu: 0.00002,
} as const;

export const functionResourcesSchema = z.object({
  vcpu: z.number().min(0.05).max(16),
  memoryMb: z.number().int().min(128).max(32768),
}).strict().refine((r) => r.vcpu / (r.memoryMb / 1024) <= 1 && r.vcpu / (r.memoryMb / 1024) >= 0.25, {
  message: 'FC requires vCPU : memory (GB) between 1:1 and 1:4',
});
export type FunctionResources = z.infer<typeof functionResourcesSchema>;

export interface BilledInvocation { function: string; durationMs: number }

export interface CostEstimate {
  invocations: number;
  vcpuSeconds: number;
  gbSeconds: number;
  computeUnits: number;
  usd: number;
}

/** Billed compute for a request: every invocation's duration times its function's vCPU and memory. */
export function estimateCost(calls: BilledInvocation[], resources: Record<string, FunctionResources>): CostEstimate {
  let vcpuSeconds = 0;
  let gbSeconds = 0;
  for (const c of calls) {
    const r = resources[c.function];
    if (!r) continue;
    // FC bills by the millisecond, rounded up.
    const s = Math.ceil(c.durationMs) / 1000;
    vcpuSeconds += s * r.vcpu;
    gbSeconds += (s * r.memoryMb) / 1024;
  }
  const computeUnits = calls.length * FC_PRICING.cuPerInvocation + vcpuSeconds * FC_PRICING.cuPerVcpuSecond + gbSeconds * FC_PRICING.cuPerGbSecond;
  return { invocations: calls.length, vcpuSeconds, gbSeconds, computeUnits, usd: computeUnits * FC_PRICING.usdPerCu };
}
