/** Jupyter plumbing: the project-local tslab kernel and the headless notebook runner. */
export * from './kernel';
export * from './runner';
