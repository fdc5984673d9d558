/**
 * Nested invocation for the process pool: a handler's `context.invoker` sends `invoke-req` over
 * IPC; the relay runs the call through the pool like any other (the callee's limits, queue, cold
 * starts, crash and timeout detection) and answers with `invoke-res`, or drops the answer if the
 * calling instance has died meanwhile.
 */
import { serializeInvokeError } from './errors.ts';
import type { InvokeOptions, InvokeResult } from './invoker.ts';
import type { ParentMessage, RunnerMessage } from './instance-runner.ts';
import { toBuf, type FunctionState, type Instance } from './pool-instance.ts';

/** What the relay needs from the pool. */
export interface NestedInvoker {
  invoke(functionName: string, payload: Buffer | Uint8Array, options?: InvokeOptions): Promise<InvokeResult>;
  invokeGang(functionName: string, payloads: Buffer[], options?: Pick<InvokeOptions, 'deadline'>): Promise<InvokeResult>[];
}

export class NestedCallRelay {
  /** Gang members received so far, per calling instance and gang id. */
  private readonly gangs = new Map<string, { callId: number; payload: Buffer }[]>();

  constructor(private readonly pool: NestedInvoker) {}

  /**
   * Nested invocation from an instance's `context.invoker`: run it through this pool like any
   * other call (the callee's limits, queue, cold starts, crash/timeout detection) and reply.
   */
  relay(fn: FunctionState, inst: Instance, msg: Extract<RunnerMessage, { t: 'invoke-req' }>): void {
    const { callId } = msg;
    fn.counters.nestedCalls++;
    const answer = (call: Promise<InvokeResult>, id: number) => call.then(
      (result) => this.reply(fn, inst, { t: 'invoke-res', callId: id, result }),
      (err: unknown) => this.reply(fn, inst, { t: 'invoke-res', callId: id, error: serializeInvokeError(err) }),
    );
    if (msg.gang && typeof msg.functionName === 'string') {
      // Members arrive as consecutive messages; the gang is queued once all are here.
      const key = `${inst.id}:${msg.gang.id}`;
      const members = this.gangs.get(key) ?? [];
      members.push({ callId, payload: toBuf(msg.payload) });
      if (members.length < msg.gang.size) { this.gangs.set(key, members); return; }
      this.gangs.delete(key);
      this.pool.invokeGang(msg.functionName, members.map((m) => m.payload), { deadline: msg.deadline }).forEach((c, i) => answer(c, members[i].callId));
      return;
    }
    let call: Promise<InvokeResult>;
    try {
      call = typeof msg.functionName === 'string'
        ? this.pool.invoke(msg.functionName, msg.payload, { urgent: msg.urgent === true, deadline: msg.deadline })
        : Promise.reject(new TypeError('invoke(): functionName must be a string'));
    } catch (err) {
      call = Promise.reject(err);
    }
    void answer(call, callId);
  }

  /** Send a nested invocation's reply, or drop it if the caller has died meanwhile. Never throws. */
  private reply(fn: FunctionState, inst: Instance, msg: Extract<ParentMessage, { t: 'invoke-res' }>): void {
    if (inst.state === 'dead' || !inst.child.connected) {
      fn.counters.nestedRepliesDropped++;
      return;
    }
    try {
      inst.child.send(msg, (err) => {
        // Channel closed under us: the caller is dying and its exit handler reports it.
        if (err) fn.counters.nestedRepliesDropped++;
      });
    } catch {
      fn.counters.nestedRepliesDropped++;
    }
  }
}
