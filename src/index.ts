/** The workbench library, as the notebooks import it: `import * as wb from "../dist/src";` */
export * from './backend';
export * from './config';
export * from './session';
export { Random } from './random';
export * as display from './display';
export * as data from './data';
export * as jupyter from './jupyter';
export * as preprocess from './preprocess';
export * as train from './train';
export * as model from './model';
export * as results from './results';
