/**
 * Rich output for the notebooks, in forms that survive `jupyter nbconvert --to html` with no network:
 * Vega-Lite charts rendered to SVG in Node (plus the Vega-Lite JSON, which JupyterLab renders
 * natively), tables as HTML, images as PNG data URIs. Inside a tslab kernel each helper emits one
 * display_data message; anywhere else (plain node, tests, the command line) it prints a short text
 * fallback and never throws for want of a kernel.
 */
import type * as pl from 'nodejs-polars';
import type { TopLevelSpec } from 'vega-lite';
import { PNG } from 'pngjs';
import { el, escapeHtml, join } from './html';

export type { TopLevelSpec };
/**
 * What chart() takes: a Vega-Lite spec. Plain objects are accepted too, so that a spec built in a
 * notebook variable (where TypeScript widens mark: "bar" to string) needs no `as const`;
 * vega-lite validates it when compiling.
 */
export type ChartSpec = TopLevelSpec | Record<string, unknown>;

/** A Vega-Lite spec as this library builds them: a plain object with inline data. */
export type VegaLiteSpec = Record<string, unknown>;
export const VEGA_LITE_SCHEMA = 'https://vega.github.io/schema/vega-lite/v5.json';

/** A Jupyter mime bundle: mime type -> content (strings, or JSON for application/*+json). */
export type MimeBundle = Record<string, unknown>;

interface DisplayMessage {
  data: MimeBundle;
  metadata: Record<string, unknown>;
  transient: { display_id?: string };
}
type WriteDisplayData = (msg: DisplayMessage, update: boolean) => void;

/**
 * tslab's writer for the cell being executed, or null outside a kernel. tslab sets
 * `lastWriteDisplayData` on its jupyter module at every execute request; we look the module up
 * in the require cache rather than requiring it, so plain node never loads tslab (and the kernel's
 * own copy is found even when it is not this project's node_modules/tslab).
 */
function kernelWriter(): WriteDisplayData | null {
  for (const [file, mod] of Object.entries(require.cache)) {
    if (!mod || !/[\\/]tslab[\\/]dist[\\/]jupyter\.js$/.test(file)) continue;
    const write = (mod.exports as { lastWriteDisplayData?: WriteDisplayData | null }).lastWriteDisplayData;
    if (typeof write === 'function') return write;
  }
  return null;
}

/** True when running inside a tslab kernel that can show rich output. */
export function inKernel(): boolean {
  return kernelWriter() !== null;
}

/**
 * Emits one display_data with every mime type of the bundle (tslab's public display.raw carries a
 * single type). With a displayId, `update` replaces the earlier output of that id.
 * Returns false (and does nothing) outside a kernel.
 */
export function emit(bundle: MimeBundle, displayId?: string, update = false, metadata: Record<string, unknown> = {}): boolean {
  const write = kernelWriter();
  if (!write) return false;
  write({ data: bundle, metadata, transient: displayId ? { display_id: displayId } : {} }, update);
  return true;
}

/**
 * The output metadata key under which a notebook records which run its outputs belong to
 * ({ tlwb: { run: "<run id>" } }): the session line carries it, the headless runner puts it in the
 * notebook's metadata, and the report refuses a notebook whose outputs name another run.
 */
export const RUN_METADATA_KEY = 'tlwb';

/** Prints one line; in a kernel, as a plain-text display that records the run it speaks of. */
export function runLine(line: string, runId: string): void {
  if (!emit({ 'text/plain': line }, undefined, false, { [RUN_METADATA_KEY]: { run: runId } })) console.log(line);
}

function fallback(text: string): void {
  if (text) process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

// The one escaping path lives in html.ts; re-exported for the notebooks and older callers.
export { escapeHtml };

// ---------------------------------------------------------------------------------------------
// Charts

/** The chart's title as plain text, for the text fallback. */
function specTitle(spec: ChartSpec): string {
  const t = (spec as { title?: unknown }).title;
  if (typeof t === 'string') return t;
  if (t && typeof t === 'object' && typeof (t as { text?: unknown }).text === 'string') return (t as { text: string }).text;
  const d = (spec as { description?: unknown }).description;
  return typeof d === 'string' ? d : 'chart';
}

/**
 * require() with Node's deprecation warnings off for its duration: vega-loader loads node-fetch 2,
 * whose whatwg-url requires Node's deprecated `punycode`, and Node 22 prints DEP0040 into whichever
 * notebook cell first draws a chart. Charts render from inline data; nothing is fetched through it.
 */
function requireQuietly(name: string): unknown {
  const before = process.noDeprecation;
  process.noDeprecation = true;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- a module named at run time
    return require(name);
  } finally {
    process.noDeprecation = before;
  }
}

/**
 * Compiles a Vega-Lite 5 spec and renders it to an SVG string in Node (headless vega View).
 * Data must be inline or local files: the loader reads files only, so no network is ever touched.
 */
export async function chartSvg(spec: ChartSpec): Promise<string> {
  // Loaded on first use: vega is sizeable and many callers never chart.
  const vega = requireQuietly('vega') as typeof import('vega');
  const vl = require('vega-lite') as typeof import('vega-lite');
  let compiled;
  try {
    compiled = vl.compile(spec as TopLevelSpec).spec;
  } catch (e) {
    throw new Error(`chart '${specTitle(spec)}': not a valid Vega-Lite spec (${(e as Error).message})`, { cause: e });
  }
  const view = new vega.View(vega.parse(compiled), { renderer: 'none', loader: vega.loader({ mode: 'file' }) });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** An <img> showing an SVG through a data URI: survives every HTML sanitizer that keeps data images. */
export function svgImgHtml(svg: string, alt = 'chart'): string {
  return el('img', { src: `data:image/svg+xml;base64,${Buffer.from(svg, 'utf8').toString('base64')}`, alt }).html;
}

/**
 * The mime bundle of a chart: the SVG, the spec for JupyterLab's Vega-Lite renderer, and the SVG
 * again as an <img> data URI in text/html - because nbconvert 6.5 to 7.6 (Debian ships 6.5) runs
 * image/svg+xml outputs through an HTML cleaner that strips every SVG element, so an HTML export
 * of an SVG-only output shows no chart (jupyter/nbconvert#1894, fixed in 7.7 the same way).
 */
export async function chartBundle(spec: ChartSpec): Promise<MimeBundle> {
  const svg = await chartSvg(spec);
  const title = specTitle(spec);
  return {
    'text/html': svgImgHtml(svg, title),
    'image/svg+xml': svg,
    'application/vnd.vegalite.v5+json': spec,
    'text/plain': `<${title}: Vega-Lite chart>`,
  };
}

/** Shows a Vega-Lite chart: one display_data with SVG, Vega-Lite JSON and HTML in tslab; a one-line note elsewhere. */
export async function chart(spec: ChartSpec): Promise<void> {
  const bundle = await chartBundle(spec);
  if (!emit(bundle)) fallback(`[chart] ${specTitle(spec)}`);
}

// ---------------------------------------------------------------------------------------------
// Tables

export type Row = Record<string, unknown>;

export interface TableOptions {
  /** Rows shown before the table is cut (with a note saying how many were left out). Default 50. */
  maxRows?: number;
  /** Fraction digits for non-integer numbers. Default 4. */
  digits?: number;
  caption?: string;
}

function isDataFrame(x: unknown): x is pl.DataFrame {
  return typeof x === 'object' && x !== null && Array.isArray((x as pl.DataFrame).columns) && typeof (x as pl.DataFrame).toRecords === 'function';
}

function tableData(df: pl.DataFrame | Row[], maxRows: number): { columns: string[]; rows: Row[]; total: number } {
  if (isDataFrame(df)) {
    return { columns: df.columns, rows: df.head(maxRows).toRecords() as Row[], total: df.height };
  }
  if (!Array.isArray(df)) throw new Error(`table: expected a polars DataFrame or an array of row objects, got ${typeof df}`);
  const columns: string[] = [];
  for (const r of df) for (const k of Object.keys(r)) if (!columns.includes(k)) columns.push(k);
  return { columns, rows: df.slice(0, maxRows), total: df.length };
}

function formatCell(v: unknown, digits: number): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') return Number.isInteger(v) || !Number.isFinite(v) ? String(v) : String(Number(v.toFixed(digits)));
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'object') return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x));
  return String(v);
}

/** An HTML table of a polars DataFrame or of row objects (numbers right-aligned). */
export function tableHtml(df: pl.DataFrame | Row[], opts: TableOptions = {}): string {
  const maxRows = opts.maxRows ?? 50;
  const digits = opts.digits ?? 4;
  const { columns, rows, total } = tableData(df, maxRows);
  const cell = (v: unknown) =>
    el('td', { style: typeof v === 'number' || typeof v === 'bigint' ? 'text-align:right' : undefined }, formatCell(v, digits));
  const head = el('thead', {}, el('tr', {}, columns.map((c) => el('th', {}, c))));
  const body = join(rows.map((r) => el('tr', {}, columns.map((c) => cell(r[c])))), '\n');
  const caption = opts.caption ? el('caption', {}, opts.caption) : null;
  const more = total > rows.length ? join(['\n', el('p', {}, el('em', {}, `${total - rows.length} more rows not shown (${total} in all)`))]) : null;
  return join([el('table', { class: 'dataframe' }, caption, head, el('tbody', {}, '\n', body, '\n')), more]).html;
}

/** Plain-text version of a table, for terminals. */
export function tableText(df: pl.DataFrame | Row[], opts: TableOptions = {}): string {
  const { columns, rows, total } = tableData(df, opts.maxRows ?? 50);
  const digits = opts.digits ?? 4;
  const grid = [columns, ...rows.map((r) => columns.map((c) => formatCell(r[c], digits)))];
  const widths = columns.map((_c, i) => Math.max(...grid.map((line) => line[i].length)));
  const lines = grid.map((line) => line.map((s, i) => s.padEnd(widths[i])).join('  ').trimEnd());
  lines.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  if (opts.caption) lines.unshift(opts.caption);
  if (total > rows.length) lines.push(`... ${total - rows.length} more rows (${total} in all)`);
  return lines.join('\n');
}

/** An object's fields as rows of field and value (nested values as JSON): a profile section as a small table. */
export function fieldTable(obj: object): Row[] {
  return Object.entries(obj).map(([field, value]) => ({ field, value: value !== null && typeof value === 'object' ? JSON.stringify(value) : String(value) }));
}

/** Shows a table: HTML in tslab, aligned text elsewhere. */
export function table(df: pl.DataFrame | Row[], opts: TableOptions = {}): void {
  const text = tableText(df, opts);
  if (!emit({ 'text/html': tableHtml(df, opts), 'text/plain': text })) fallback(text);
}

// ---------------------------------------------------------------------------------------------
// Images

/** RGBA pixels from RGB (3 channels), RGBA (4) or grey (1) interleaved bytes of a width x height image. */
function toRgba(pixels: Uint8Array, width: number, height: number, what: string): Buffer {
  const n = width * height;
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) {
    throw new Error(`${what}: width and height should be positive integers, got ${width}x${height}`);
  }
  const channels = pixels.length / n;
  if (![1, 3, 4].includes(channels)) {
    throw new Error(`${what}: expected ${n * 3} bytes (RGB ${width}x${height}), or ${n} grey / ${n * 4} RGBA; got ${pixels.length}`);
  }
  const out = Buffer.alloc(n * 4);
  for (let i = 0; i < n; i++) {
    const s = i * channels;
    out[i * 4] = pixels[s];
    out[i * 4 + 1] = pixels[channels === 1 ? s : s + 1];
    out[i * 4 + 2] = pixels[channels === 1 ? s : s + 2];
    out[i * 4 + 3] = channels === 4 ? pixels[s + 3] : 255;
  }
  return out;
}

/** PNG bytes of an interleaved RGB (HWC) image. */
export function pngBytes(rgb: Uint8Array, width: number, height: number, what = 'png'): Buffer {
  const rgba = toRgba(rgb, width, height, what);
  const png = new PNG({ width, height });
  png.data = rgba;
  return PNG.sync.write(png);
}

/** data:image/png;base64,... of an interleaved RGB (HWC) image, for <img src> that needs no files. */
export function pngDataUri(rgb: Uint8Array, width: number, height: number): string {
  return `data:image/png;base64,${pngBytes(rgb, width, height).toString('base64')}`;
}

export interface GridImage {
  /** Interleaved pixels, height x width x 3 (RGB); grey (x1) and RGBA (x4) are accepted too. */
  rgb: Uint8Array;
  width: number;
  height: number;
  caption?: string;
}

export interface GridOptions {
  /** Images per row. Default: up to 10. */
  columns?: number;
  /** Display magnification (pixelated). Default: enough to show small images at about 96 px. */
  scale?: number;
  title?: string;
}

/** HTML of a grid of images, each an <img> with a PNG data URI, so it survives HTML export. */
export function imageGridHtml(items: GridImage[], opts: GridOptions = {}): string {
  const columns = Math.max(1, opts.columns ?? Math.min(10, items.length || 1));
  const cells = items.map((it, i) => {
    const scale = opts.scale ?? Math.max(1, Math.round(96 / Math.max(it.width, it.height)));
    const png = pngBytes(it.rgb, it.width, it.height, `imageGrid item ${i}`).toString('base64');
    const caption = it.caption ? el('figcaption', { style: 'font-size:11px;text-align:center' }, it.caption) : null;
    return el(
      'figure',
      { style: 'margin:2px' },
      el('img', {
        src: `data:image/png;base64,${png}`,
        width: it.width * scale,
        height: it.height * scale,
        style: 'image-rendering:pixelated;display:block',
        alt: it.caption ?? `image ${i}`,
      }),
      caption,
    );
  });
  const title = opts.title ? el('div', { style: 'font-weight:bold' }, opts.title) : null;
  return join([title, el('div', { style: `display:grid;grid-template-columns:repeat(${columns},max-content);gap:4px` }, cells)]).html;
}

/** Shows a grid of images in tslab; prints a one-line note elsewhere. */
export function imageGrid(items: GridImage[], opts: GridOptions = {}): void {
  items.forEach((it, i) => {
    if (!(it && it.rgb instanceof Uint8Array)) throw new Error(`imageGrid: item ${i} should have rgb: Uint8Array`);
  });
  const html = imageGridHtml(items, opts);
  const note = `[image grid] ${opts.title ? `${opts.title}: ` : ''}${items.length} images`;
  if (!emit({ 'text/html': html, 'text/plain': note })) fallback(note);
}

// ---------------------------------------------------------------------------------------------
// Plain HTML / Markdown

export function html(s: string): void {
  if (!emit({ 'text/html': s, 'text/plain': stripTags(s) })) fallback(stripTags(s));
}

export function markdown(s: string): void {
  if (!emit({ 'text/markdown': s, 'text/plain': s })) fallback(s);
}

function stripTags(s: string): string {
  return s.replace(/<[^>]*>/g, ' ').replace(/[ \t]+/g, ' ').trim();
}

// ---------------------------------------------------------------------------------------------
// Live (updatable) output

/** One output area that later calls replace, for progress during training. */
export interface LiveDisplay {
  readonly id: string;
  /** True when updates go to a notebook output; false in a terminal. */
  readonly rich: boolean;
  /** `text`: the text/plain form (default: the HTML without tags). */
  html(s: string, text?: string): void;
  svg(s: string): void;
  markdown(s: string): void;
  /** In a terminal the text is printed as one line; in a kernel it replaces the output. */
  text(s: string): void;
  chart(spec: ChartSpec): Promise<void>;
}

export interface LiveOptions {
  /** In a terminal, print text() updates (default true); html/svg/chart updates are dropped there. */
  terminalText?: boolean;
}

/** An updatable display: tslab display_data + update_display_data by id; a terminal gets text lines. */
export function live(opts: LiveOptions = {}): LiveDisplay {
  const id = require('node:crypto').randomBytes(8).toString('hex') as string;
  let shown = false;
  const rich = inKernel();
  const put = (bundle: MimeBundle): boolean => {
    const ok = emit(bundle, id, shown);
    if (ok) shown = true;
    return ok;
  };
  return {
    id,
    rich,
    html: (s, text) => void put({ 'text/html': s, 'text/plain': text ?? stripTags(s) }),
    svg: (s) => void put({ 'text/html': svgImgHtml(s, 'figure'), 'image/svg+xml': s, 'text/plain': '<svg>' }),
    markdown: (s) => void put({ 'text/markdown': s, 'text/plain': s }),
    text: (s) => {
      if (!put({ 'text/plain': s }) && opts.terminalText !== false) fallback(s);
    },
    chart: async (spec) => {
      if (!inKernel()) return;
      put(await chartBundle(spec));
    },
  };
}
