/**
 * Interruption as a stop flag the training loop checks after each batch.
 *
 * Jupyter's Kernel -> Interrupt sends SIGINT to the kernel process; a terminal's Ctrl-C does the
 * same to `cli train`. Node runs signal handlers on the event loop, and a training loop whose awaits
 * all settle as microtasks (wasm and cpu kernels are synchronous) never lets the loop turn: the
 * signal waits until training ends. So the loop must `yieldToEventLoop()` once per batch.
 *
 * tslab's own SIGINT handler (node_modules/tslab/dist/main.js) rejects the running cell's promise at
 * once and leaves its work running in the background, unseen. While training we take the signal
 * ourselves instead: the first one asks the loop to stop at the end of the batch (it writes a
 * checkpoint and the cell ends with where it stopped); a second one gives the signal back to the
 * previous handlers (tslab: abandon the cell) or, in a terminal, quits at once.
 */
import { inspect } from 'node:util';
import { inKernel } from '../display';

export interface StopRequest {
  /** True once an interrupt arrived. */
  readonly requested: boolean;
  /** Gives SIGINT back to the handlers it had before. */
  dispose(): void;
}

/** Lets pending I/O and signals run: setImmediate callbacks run after the poll phase. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Thrown by train() when an interrupt stopped it: the checkpoint is written, a rerun resumes. */
export class TrainingInterruptedError extends Error {
  constructor(
    readonly epoch: number,
    readonly batch: number,
    readonly checkpoint: string | null,
    message = `interrupted at epoch ${epoch}, batch ${batch}: rerun to resume (checkpoint ${checkpoint})`,
  ) {
    super(message);
    this.name = 'TrainingInterrupted';
    // tslab prints the stack of a failed cell; the message is all the user needs.
    this.stack = `${this.name}: ${this.message}`;
  }

  /**
   * tslab ends a failed cell with console.error(error), which would show `[TrainingInterrupted: ...]`
   * and then the fields as an object: the cell's one stop sentence is the message alone.
   */
  [inspect.custom](): string {
    return this.message;
  }

  /** Stopped between training steps (while caching base features): the last checkpoint, if any, stands. */
  static during(what: string, checkpoint: string | undefined): TrainingInterruptedError {
    const rerun = inKernel() ? 'rerun this cell' : 'rerun';
    const next = checkpoint ? `${rerun} to resume from the last checkpoint (${checkpoint})` : `nothing trained yet; ${rerun} to start again`;
    return new TrainingInterruptedError(0, 0, checkpoint ?? null, `interrupted while computing ${what}: ${next}`);
  }
}

/**
 * Takes SIGINT over until dispose(). `onFirst` is told when the first interrupt arrives (to say
 * that training will stop after the current batch).
 *
 * It first yields to the event loop: tslab runs a cell's synchronous part through
 * vm.runInThisContext({ breakOnSigint: true }), which detaches every SIGINT listener for that time
 * and re-attaches them after, counting on the re-attachment to re-install the signal handler. A
 * listener added in between leaves SIGINT with Node's exiting handler, and the interrupt kills the
 * kernel. After one turn of the event loop the cell's synchronous part is over.
 */
export async function stopOnInterrupt(onFirst?: () => void): Promise<StopRequest> {
  await yieldToEventLoop();
  const previous = process.listeners('SIGINT');
  let requested = false;
  let disposed = false;
  const restore = () => {
    if (disposed) return;
    disposed = true;
    process.off('SIGINT', handler);
    for (const l of previous) if (!process.listeners('SIGINT').includes(l)) process.on('SIGINT', l as NodeJS.SignalsListener);
  };
  const handler = (sig: NodeJS.Signals) => {
    if (!requested) {
      requested = true;
      onFirst?.();
      return;
    }
    restore();
    if (previous.length === 0) process.exit(130); // a terminal's second Ctrl-C: quit now
    for (const l of previous) (l as NodeJS.SignalsListener)(sig);
  };
  for (const l of previous) process.off('SIGINT', l as NodeJS.SignalsListener);
  process.on('SIGINT', handler);
  return {
    get requested() {
      return requested;
    },
    dispose: restore,
  };
}
