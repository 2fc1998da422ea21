/** Stage 05: evaluation, interpretation (confusion, per-class, top losses), charts, the report, predict. */
export * from './metrics';
export * from './charts';
export * from './evaluate';
export * from './robustness';
export * from './runs';
export * from './study';
export * from './report';
export * from './predict';
export { reportCommand, predictCommand, compareCommand } from './command';
export * from './browser';
export * from './run';
export * from './divergence';
export { publishRun, PUBLISHED_FILE } from './publish';
export type { PublishOptions, PublishResult } from './publish';
export * from './show-results';
