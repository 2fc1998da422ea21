/**
 * Kernels that the wasm backend lacks for training (Conv2DBackpropFilter, ...).
 * Filled in by the CPU-training work; registering is idempotent.
 */
export function registerWasmTrainingKernels(): void {
  // Intentionally empty until the wasm gradient kernels land.
}
