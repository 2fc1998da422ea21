/** Stage 05: evaluation, interpretation (confusion, per-class, top losses), charts, the report, predict. */
export * from './metrics';
export * from './charts';
export * from './evaluate';
export * from './runs';
export * from './report';
export * from './predict';
export { reportCommand, predictCommand } from './command';
export * from './browser';
export * from './run';
