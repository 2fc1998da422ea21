/**
 * The run report: ONE self-contained HTML file with the run's executed notebooks in order, a table
 * of contents, and every chart and image embedded. We render the cells ourselves (markdown with
 * markdown-it; SVG, PNG/JPEG, HTML and text outputs as they are) instead of stitching several
 * `jupyter nbconvert` pages together: no Python is needed, nothing links to a CDN, and the page has
 * no script at all. Anything in an output that a browser would fetch (scripts, stylesheets, remote
 * or file images) is inlined when it is a local file and dropped otherwise; a final check refuses
 * to write a report that still refers to anything outside itself.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import MarkdownIt from 'markdown-it';
import sanitizeHtml from 'sanitize-html';
import { parseDocument, DomUtils } from 'htmlparser2';
import { el, escapeHtml, join, trusted } from '../html';
import { RUN_METADATA_KEY } from '../display';
type Markdown = InstanceType<typeof MarkdownIt>;
import { paths } from '../config';
import { writeFileAtomic } from '../session';
import { headlineText, readHeadline, readRobustness, summarySection, SUMMARY_STYLE } from './report-summary';
import { robustnessSpec } from './charts';
import { readJsonFile, readJsonObjectIfExists } from '../fsutil';
import { chartSvg } from '../display';
import { describeDivergence, readDivergence } from './divergence';

// Browsers ignore ASCII whitespace and control characters inside a URL's scheme ('java\tscript:').
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const URL_IGNORED_CHARS = /[\x00-\x20]/g;

/** The parts of an nbformat 4 notebook the report reads. */
interface NotebookCell {
  cell_type: 'markdown' | 'code' | 'raw';
  source: string | string[];
  execution_count?: number | null;
  outputs?: NotebookOutput[];
  attachments?: Record<string, Record<string, string>>;
  metadata?: Record<string, unknown>;
}
interface NotebookOutput {
  output_type: 'stream' | 'display_data' | 'execute_result' | 'error' | 'update_display_data';
  metadata?: Record<string, unknown>;
  name?: string;
  text?: string | string[];
  data?: Record<string, unknown>;
  ename?: string;
  evalue?: string;
  traceback?: string[];
}
interface Notebook {
  nbformat: number;
  cells: NotebookCell[];
  metadata?: Record<string, unknown>;
}

export interface ReportOptions {
  /** Output file; default <runDir>/report.html. */
  out?: string;
  /** Title at the top; default "Run <folder name>". */
  title?: string;
}

const joinSource = (s: string | string[] | undefined): string => (Array.isArray(s) ? s.join('') : s ?? '');

export { escapeHtml };

/** Terminal colour codes (tracebacks, progress bars) are noise in a page. */
export function stripAnsi(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\x1b\][^\x07]*\x07/g, '');
}

/** Keeps the last state of lines rewritten with carriage returns (progress bars). */
function collapseCarriageReturns(s: string): string {
  return s
    .split('\n')
    .map((line) => {
      const parts = line.split('\r').filter((p) => p.length);
      return parts.length ? parts[parts.length - 1] : '';
    })
    .join('\n');
}

const MAX_STREAM_LINES = 400;

function streamText(raw: string): string {
  const lines = collapseCarriageReturns(stripAnsi(raw)).split('\n');
  if (lines.length <= MAX_STREAM_LINES) return lines.join('\n');
  const keep = MAX_STREAM_LINES / 2;
  return [...lines.slice(0, keep), `... ${lines.length - 2 * keep} lines left out ...`, ...lines.slice(-keep)].join('\n');
}

const MIME_BY_EXT: Record<string, string> = {
  '.png': 'image/png', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.gif': 'image/gif', '.svg': 'image/svg+xml', '.webp': 'image/webp',
};

function fileDataUri(file: string): string | null {
  const mime = MIME_BY_EXT[path.extname(file).toLowerCase()];
  if (!mime || !fs.existsSync(file) || !fs.statSync(file).isFile()) return null;
  return `data:${mime};base64,${fs.readFileSync(file).toString('base64')}`;
}

/** Where relative references in a notebook may point: beside the executed copy, or the project's notebooks/. */
export interface ResolveContext {
  baseDirs: string[];
  attachments?: Record<string, Record<string, string>>;
}

function resolveResource(ref: string, ctx: ResolveContext): string | null {
  if (ref.startsWith('data:')) return ref;
  if (ref.startsWith('attachment:')) {
    const att = ctx.attachments?.[decodeURIComponent(ref.slice('attachment:'.length))];
    const mime = att && Object.keys(att)[0];
    return mime ? `data:${mime};base64,${String(att[mime]).replace(/\s+/g, '')}` : null;
  }
  if (/^[a-z][a-z0-9+.-]*:/i.test(ref) || ref.startsWith('//')) {
    // http(s), file: and the like: never fetched by the report. A file: URL to a local image is inlined.
    if (ref.startsWith('file://')) return fileDataUri(decodeURIComponent(new URL(ref).pathname));
    return null;
  }
  const clean = decodeURIComponent(ref.split(/[?#]/)[0]);
  for (const base of ctx.baseDirs) {
    const uri = fileDataUri(path.resolve(base, clean));
    if (uri) return uri;
  }
  return null;
}

/** Elements a notebook output may keep: text, tables, images, and the SVG a chart is drawn with. */
const HTML_TAGS = [
  'a', 'abbr', 'b', 'blockquote', 'br', 'caption', 'code', 'col', 'colgroup', 'dd', 'del', 'details', 'div', 'dl', 'dt',
  'em', 'figcaption', 'figure', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'hr', 'i', 'img', 'ins', 'kbd', 'li', 'mark', 'ol',
  'p', 'pre', 'q', 's', 'samp', 'small', 'span', 'strong', 'sub', 'summary', 'sup', 'table', 'tbody', 'td', 'tfoot', 'th',
  'thead', 'tr', 'u', 'ul', 'var',
];
// SVG keeps its camelCase tag names through the parser; attribute names come out lower-cased (a browser restores them).
const SVG_TAGS = [
  'svg', 'g', 'defs', 'path', 'rect', 'circle', 'ellipse', 'line', 'polyline', 'polygon', 'text', 'tspan', 'textPath',
  'title', 'desc', 'clipPath', 'linearGradient', 'radialGradient', 'stop', 'pattern', 'marker', 'mask', 'symbol', 'use', 'image',
];
const COMMON_ATTRS = ['class', 'id', 'title', 'style', 'lang', 'dir', 'role', 'aria-*', 'width', 'height', 'align', 'valign'];
const SVG_ATTRS = [
  'viewbox', 'preserveaspectratio', 'xmlns', 'xmlns:xlink', 'version', 'x', 'y', 'x1', 'y1', 'x2', 'y2', 'cx', 'cy', 'r', 'rx', 'ry',
  'd', 'points', 'transform', 'fill', 'fill-opacity', 'fill-rule', 'stroke', 'stroke-width', 'stroke-opacity', 'stroke-dasharray',
  'stroke-dashoffset', 'stroke-linecap', 'stroke-linejoin', 'stroke-miterlimit', 'opacity', 'clip-path', 'clip-rule', 'mask',
  'text-anchor', 'dominant-baseline', 'alignment-baseline', 'font-family', 'font-size', 'font-weight', 'font-style', 'dx', 'dy',
  'letter-spacing', 'pointer-events', 'shape-rendering', 'paint-order', 'display', 'visibility', 'offset', 'stop-color',
  'stop-opacity', 'gradientunits', 'gradienttransform', 'patternunits', 'cliprule', 'clippathunits', 'marker-start',
  'marker-mid', 'marker-end', 'markerwidth', 'markerheight', 'refx', 'refy', 'orient', 'href', 'xlink:href', 'focusable',
];
/** Attributes that make a browser load something. */
const URL_ATTRS = ['src', 'href', 'xlink:href'];

/** CSS functions a style attribute may use: colours, sizes and transforms, none of which loads anything. */
const CSS_FUNCTIONS = new Set(['rgb', 'rgba', 'hsl', 'hsla', 'calc', 'min', 'max', 'clamp', 'repeat', 'minmax', 'translate', 'translatex', 'translatey', 'rotate', 'scale', 'matrix', 'var']);

/**
 * A style attribute keeps only declarations that cannot load anything: no url()/image-set() or any
 * other function outside CSS_FUNCTIONS, no escapes, comments or quoted strings (which can spell a
 * url in disguise), no @import. Declarations are split on ';' - that is safe here because
 * a declaration with a quote in it, where a ';' could hide, is dropped as a whole.
 */
export function cleanCss(css: string): string {
  return css
    .split(';')
    .map((d) => d.trim())
    .filter((d) => {
      if (!/^[a-zA-Z-]+\s*:/.test(d) || /[\\"'`<>@]|\/\*/.test(d)) return false;
      for (const m of d.matchAll(/([a-zA-Z-]*)\s*\(/g)) if (!CSS_FUNCTIONS.has(m[1].toLowerCase())) return false;
      return true;
    })
    .join(';');
}

/**
 * Makes an HTML fragment from a notebook safe and self-contained, with a real HTML parser
 * (sanitize-html over htmlparser2) and an allow-list: only the elements and attributes above survive,
 * so no script, event handler, frame, form, object or stylesheet; every image reference is inlined as a
 * data: URI or the image replaced by its alt text; CSS url()s to anything but data: dropped. Links
 * (<a href>) to http(s)/mailto/# stay: a browser does not fetch them. The parser decodes attribute
 * values and the serializer quotes and escapes them again, so text can never turn into markup.
 */
export function sanitizeFragment(html: string, ctx: ResolveContext): string {
  return sanitizeHtml(html, {
    allowedTags: [...HTML_TAGS, ...SVG_TAGS],
    allowedAttributes: {
      '*': [...COMMON_ATTRS, ...SVG_ATTRS],
      a: ['href', 'name'],
      img: ['src', 'alt'],
      td: ['colspan', 'rowspan'],
      th: ['colspan', 'rowspan', 'scope'],
      ol: ['start'],
      details: ['open'],
    },
    allowedSchemes: ['http', 'https', 'mailto'],
    allowedSchemesByTag: { img: ['data'], image: ['data'] },
    allowedSchemesAppliedToAttributes: URL_ATTRS,
    allowProtocolRelative: false,
    disallowedTagsMode: 'discard',
    // every element: inline or drop what it would fetch, keep only # references inside SVG
    transformTags: {
      // an image that cannot be inlined becomes its alt text (set here: only a named transform may give text)
      img: (tagName: string, attribs: sanitizeHtml.Attributes): sanitizeHtml.Tag => {
        const src = (attribs.src ?? '').trim();
        const inlined = src ? resolveResource(src, ctx) : null;
        if (inlined && /^data:image\//i.test(inlined)) return { tagName, attribs: { ...attribs, src: inlined } };
        const alt = attribs.alt ?? '';
        return { tagName: 'span', attribs: { class: 'missing-image' }, text: `[image not embedded${alt ? `: ${alt}` : ''}]` };
      },
      '*': (tagName: string, attribs: sanitizeHtml.Attributes) => {
        const out: sanitizeHtml.Attributes = {};
        for (const [name, value] of Object.entries(attribs)) {
          const lname = name.toLowerCase();
          if (lname === 'style') {
            out[name] = cleanCss(value);
            continue;
          }
          if (!URL_ATTRS.includes(lname)) {
            out[name] = value;
            continue;
          }
          const v = value.trim();
          if (tagName === 'a' && lname === 'href') {
            if (v.startsWith('#') || /^(https?:|mailto:)/i.test(v)) out[name] = v;
            continue;
          }
          if (v.startsWith('#') && tagName !== 'img') {
            out[name] = v;
            continue;
          }
          if (tagName === 'img' || tagName === 'image') {
            const inlined = v ? resolveResource(v, ctx) : null;
            if (inlined && /^data:image\//i.test(inlined)) out[name] = inlined;
          }
        }
        return { tagName, attribs: out };
      },
    },
  });
}

let svgCounter = 0;

/** Inline SVGs share one id space in a page: prefix each chart's ids so clip paths stay its own. */
export function scopeSvgIds(svg: string, prefix = `svg${++svgCounter}-`): string {
  const ids = new Set<string>();
  for (const m of svg.matchAll(/\sid="([^"]+)"/g)) ids.add(m[1]);
  if (!ids.size) return svg;
  return svg
    .replace(/\sid="([^"]+)"/g, (_m, id: string) => ` id="${prefix}${id}"`)
    .replace(/url\(#([^)]+)\)/g, (m, id: string) => (ids.has(id) ? `url(#${prefix}${id})` : m))
    .replace(/(href)="#([^"]+)"/g, (m, attr: string, id: string) => (ids.has(id) ? `${attr}="#${prefix}${id}"` : m));
}

function stripXmlProlog(svg: string): string {
  return svg.replace(/<\?xml[^>]*\?>/g, '').replace(/<!DOCTYPE[^>]*>/gi, '').trim();
}

/**
 * Preference among the mime types of one output: Jupyter's order, except that an SVG wins over
 * HTML, so a chart that also carries an HTML form (for Jupyter's own export) stays inline SVG.
 */
const MIME_ORDER = ['image/svg+xml', 'text/html', 'image/png', 'image/jpeg', 'image/gif', 'text/markdown', 'text/latex', 'application/json', 'text/plain'];

function mimeText(v: unknown): string {
  return Array.isArray(v) ? v.join('') : typeof v === 'string' ? v : JSON.stringify(v, null, 2);
}

function renderOutput(o: NotebookOutput, md: Markdown, ctx: ResolveContext): string {
  switch (o.output_type) {
    case 'stream': {
      const text = streamText(joinSource(o.text));
      return text.trim() ? el('pre', { class: `output stream ${o.name === 'stderr' ? 'stderr' : ''}` }, text).html : '';
    }
    case 'error': {
      const tb = stripAnsi((o.traceback ?? []).join('\n')) || `${o.ename}: ${o.evalue}`;
      return el('pre', { class: 'output error' }, tb).html;
    }
    case 'display_data':
    case 'execute_result':
    case 'update_display_data': {
      const data = o.data ?? {};
      const mime = MIME_ORDER.find((m) => m in data);
      if (!mime) return '';
      const value = data[mime];
      switch (mime) {
        case 'text/html':
          return el('div', { class: 'output html' }, trusted(sanitizeFragment(mimeText(value), ctx))).html;
        case 'image/svg+xml':
          return el('div', { class: 'output svg' }, trusted(sanitizeFragment(scopeSvgIds(stripXmlProlog(mimeText(value))), ctx))).html;
        case 'image/png':
        case 'image/jpeg':
        case 'image/gif':
          return el('div', { class: 'output image' }, el('img', { alt: 'output image', src: `data:${mime};base64,${mimeText(value).replace(/\s+/g, '')}` })).html;
        case 'text/markdown':
          return el('div', { class: 'output markdown' }, trusted(sanitizeFragment(md.render(mimeText(value)), ctx))).html;
        default:
          return el('pre', { class: 'output text' }, stripAnsi(mimeText(value))).html;
      }
    }
    default:
      return '';
  }
}

export interface TocEntry {
  id: string;
  text: string;
  level: number;
}

function slug(text: string): string {
  return text.toLowerCase().replace(/<[^>]*>/g, '').replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '') || 'section';
}

/** markdown-it that gives every heading a unique id (prefixed per notebook) and records it for the contents. */
function markdownFor(prefix: string, toc: TocEntry[]): Markdown {
  const md = new MarkdownIt({ html: true, linkify: false, typographer: false });
  const used = new Set<string>();
  md.core.ruler.push('heading_ids', (state) => {
    const tokens = state.tokens;
    for (let i = 0; i < tokens.length; i++) {
      if (tokens[i].type !== 'heading_open') continue;
      const inline = tokens[i + 1];
      const text = inline?.children?.filter((t) => t.type === 'text' || t.type === 'code_inline').map((t) => t.content).join('') ?? '';
      let id = `${prefix}-${slug(text)}`;
      for (let n = 2; used.has(id); n++) id = `${prefix}-${slug(text)}-${n}`;
      used.add(id);
      tokens[i].attrSet('id', id);
      toc.push({ id, text, level: Number(tokens[i].tag.slice(1)) });
    }
  });
  return md;
}

export interface RenderedNotebook {
  /** Anchor of the notebook's section. */
  id: string;
  file: string;
  title: string;
  html: string;
  toc: TocEntry[];
  /** Cells whose execution failed (error outputs). */
  errors: number;
}

/** Reads and checks an .ipynb file (nbformat 4). */
export function readNotebook(file: string): Notebook {
  const nb = readJsonFile<Notebook>(file, 'a notebook (.ipynb)');
  if (nb.nbformat !== 4 || !Array.isArray(nb.cells)) throw new Error(`${file}: expected an nbformat 4 notebook with cells, got nbformat ${nb.nbformat}`);
  return nb;
}

/** One notebook as an HTML <section>: markdown cells rendered, code cells with their outputs. */
export function renderNotebook(file: string, opts: { index?: number; baseDirs?: string[] } = {}): RenderedNotebook {
  const nb = readNotebook(file);
  const name = path.basename(file, '.ipynb');
  const id = `nb-${slug(name)}`;
  const toc: TocEntry[] = [];
  const md = markdownFor(id, toc);
  const baseDirs = [path.dirname(file), ...(opts.baseDirs ?? [paths().notebooks])];
  let errors = 0;
  const cells = nb.cells.map((cell, i) => {
    const source = joinSource(cell.source);
    const ctx: ResolveContext = { baseDirs, attachments: cell.attachments };
    if (cell.cell_type === 'markdown') return el('div', { class: 'cell markdown' }, trusted(sanitizeFragment(md.render(source), ctx))).html;
    if (cell.cell_type === 'raw') return source.trim() ? el('pre', { class: 'cell raw' }, source).html : '';
    const outputs = (cell.outputs ?? []).map((o) => {
      if (o.output_type === 'error') errors++;
      return renderOutput(o, md, ctx);
    });
    const prompt = cell.execution_count ? `[${cell.execution_count}]` : '[ ]';
    const shown = outputs.join('');
    return el(
      'div',
      { class: 'cell code', id: `${id}-cell-${i}` },
      // Code folds away (CSS-only <details>, no script); its first line says what it is.
      el(
        'details',
        { class: 'code' },
        el('summary', {}, `${prompt} ${source.split('\n')[0].slice(0, 100)}`),
        el('div', { class: 'input' }, el('span', { class: 'prompt' }, prompt), el('pre', {}, el('code', {}, source))),
      ),
      shown ? el('div', { class: 'outputs' }, trusted(shown)) : null,
    ).html;
  });
  const firstHeading = toc.find((t) => t.level === 1) ?? toc[0];
  const title = firstHeading?.text || name;
  return {
    id,
    file,
    title,
    html: el('section', { class: 'notebook', id, 'data-notebook': path.basename(file) }, trusted(`\n${cells.join('\n')}\n`)).html,
    toc: toc.filter((t) => t !== firstHeading && t.level <= 3),
    errors,
  };
}

/** The run a metadata object names under RUN_METADATA_KEY, if any. */
function namedRun(metadata: Record<string, unknown> | undefined): string | undefined {
  const mark = metadata?.[RUN_METADATA_KEY] as { run?: unknown } | undefined;
  return typeof mark?.run === 'string' ? mark.run : undefined;
}

/**
 * A report shows one run: a notebook of run `runId` whose metadata or outputs name another run (a
 * session switched runs inside it, or the file was copied from another run) is refused, naming both.
 */
export function assertOneRun(file: string, runId: string): void {
  const nb = readNotebook(file);
  const where: string[] = [];
  const own = namedRun(nb.metadata);
  if (own && own !== runId) where.push(`its metadata (run ${own})`);
  nb.cells.forEach((cell, i) => {
    for (const o of cell.outputs ?? []) {
      const other = namedRun(o.metadata);
      if (other && other !== runId) where.push(`cell ${i + 1} (run ${other})`);
    }
  });
  if (!where.length) return;
  throw new Error(
    `${file} belongs to run ${runId} but holds outputs of another run: ${[...new Set(where)].join(', ')}. ` +
      `A report shows one run's outputs: rerun that notebook in run ${runId} (npm run notebook -- --run <run ${runId}>), ` +
      `or report the other run from its own notebooks.`,
  );
}

/** The executed notebooks of a run, in order (NN-name.ipynb sorts by NN). */
export function runNotebooks(runDir: string): string[] {
  const dir = path.join(runDir, 'notebooks');
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.ipynb') && !f.startsWith('.'))
    .sort()
    .map((f) => path.join(dir, f));
}

const STYLE = `
:root { --fg:#1f2328; --muted:#59636e; --line:#d1d9e0; --code:#f6f8fa; --accent:#0969da; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color:var(--fg); }
header.report { padding:16px 28px; border-bottom:1px solid var(--line); }
header.report h1 { margin:0 0 4px; font-size:22px; }
header.report .meta { color:var(--muted); font-size:13px; }
.layout { display:flex; align-items:flex-start; }
nav.toc { position:sticky; top:0; flex:0 0 250px; max-height:100vh; overflow:auto; padding:16px; border-right:1px solid var(--line); font-size:13px; }
nav.toc ol { padding-left:18px; margin:4px 0; } nav.toc a { color:var(--accent); text-decoration:none; }
nav.toc .errors { color:#cf222e; }
main { flex:1; min-width:0; padding:8px 28px 60px; overflow-wrap:anywhere; }
section.notebook { border-top:3px solid var(--line); margin-top:24px; padding-top:8px; }
.cell { margin:10px 0; }
.input { display:flex; gap:8px; } .prompt { color:var(--muted); font:12px monospace; padding-top:8px; min-width:40px; }
.input pre { flex:1; min-width:0; margin:0; background:var(--code); border:1px solid var(--line); border-radius:6px; padding:8px 10px; overflow:auto; font-size:13px; }
.outputs { margin-left:48px; overflow-x:auto; }
pre.output { margin:6px 0; padding:6px 10px; overflow:auto; font-size:12.5px; max-height:480px; }
pre.stderr { background:#fff8e6; } pre.error { background:#ffebe9; color:#82071e; }
.output.svg svg, .output.image img { max-width:100%; height:auto; }
table.dataframe, .output table { border-collapse:collapse; font-size:13px; margin:6px 0; }
.output th, .output td { border:1px solid var(--line); padding:3px 8px; } .output th { background:var(--code); }
.missing-image { color:var(--muted); font-style:italic; }
.warning { margin-top:8px; padding:8px 12px; background:#ffebe9; border:1px solid #cf222e; border-radius:6px; color:#82071e; }
@media print { nav.toc { display:none; } }
`;

/** Attributes a browser fetches or navigates to (an <a href> navigates only when clicked: in-page links are its use). */
const FETCHING_ATTRIBUTES = ['src', 'srcset', 'href', 'xlink:href', 'poster', 'background', 'data', 'action', 'formaction'];
/** Attributes that hold a URL in HTML or SVG (the WHATWG and SVG attribute indexes), whatever the element. */
export const URL_ATTRIBUTES = new Set([...FETCHING_ATTRIBUTES, 'cite', 'longdesc', 'usemap', 'ping', 'manifest', 'codebase', 'archive', 'classid', 'profile', 'icon', 'lowsrc', 'dynsrc', 'imagesrcset', 'itemtype', 'itemid', 'xml:base']);
/** SVG animation can set any attribute (href too) from these. */
export const SVG_ANIMATION = new Set(['animate', 'set', 'animatemotion', 'animatetransform', 'animatecolor']);

function isUrlAttribute(tag: string, name: string): boolean {
  return URL_ATTRIBUTES.has(name) || (SVG_ANIMATION.has(tag) && ['values', 'from', 'to', 'by'].includes(name));
}

/**
 * What in a page could run code or fetch something, found by parsing it (htmlparser2): script
 * elements, event-handler attributes (on*), javascript:/vbscript: URLs in URL attributes (alt or
 * title text is not a URL), frames, objects, forms, and every src/href outside <a> that is not
 * data: or #, plus CSS url()s and @imports.
 */
export function htmlViolations(html: string): string[] {
  const bad: string[] = [];
  const doc = parseDocument(html);
  const elements = DomUtils.findAll(() => true, doc.children);
  const css: string[] = [];
  for (const e of elements) {
    const tag = e.name.toLowerCase();
    if (tag === 'script') bad.push('a <script> element');
    if (['iframe', 'frame', 'object', 'embed', 'link', 'base', 'form', 'applet', 'portal'].includes(tag)) {
      bad.push(`a <${tag}> element`);
      continue;
    }
    if (tag === 'meta' && e.attribs['http-equiv'] && e.attribs['http-equiv'].toLowerCase() !== 'content-security-policy') bad.push(`<meta http-equiv="${e.attribs['http-equiv']}">`);
    if (tag === 'style') css.push(DomUtils.textContent(e));
    for (const [name, raw] of Object.entries(e.attribs)) {
      const lname = name.toLowerCase();
      const value = raw.trim();
      if (lname.startsWith('on')) bad.push(`<${tag} ${name}="${value.slice(0, 60)}"> (event handler)`);
      if (lname === 'style') css.push(value);
      // Only attributes a browser reads as a URL can run or fetch: text (alt, title, a class named
      // "javascript:alert(3)") is escaped and shown, not refused.
      if (!isUrlAttribute(tag, lname)) continue;
      // browsers ignore ASCII whitespace and control characters inside a URL's scheme
      if (/^(javascript|vbscript):/i.test(value.replace(URL_IGNORED_CHARS, ''))) bad.push(`<${tag} ${name}="${value.slice(0, 60)}"> (script URL)`);
      if (FETCHING_ATTRIBUTES.includes(lname)) {
        if (tag === 'a' && lname === 'href') continue;
        if (value === '' || value.startsWith('#') || value.startsWith('data:')) continue;
        bad.push(`<${tag} ${name}="${value.slice(0, 80)}">`);
      }
    }
  }
  for (const block of css) {
    for (const m of block.matchAll(/url\(\s*['"]?([^)'"]*)/gi)) if (!/^(data:|#)/.test(m[1].trim())) bad.push(`url(${m[1].slice(0, 80)})`);
    if (/@import/i.test(block)) bad.push('@import');
    if (/image-set\s*\(/i.test(block)) bad.push('image-set()');
  }
  return bad;
}

/** Throws if the page could run a script or make the browser fetch anything (see htmlViolations). */
export function assertSelfContained(html: string, origin = 'report'): void {
  const bad = htmlViolations(html);
  if (bad.length) throw new Error(`${origin}: ${bad.length} unsafe or external item(s), e.g. ${bad.slice(0, 3).join(', ')}`);
}

/** No script at all, images only from data:, nothing else loaded: a second wall behind the sanitizer. */
export const REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:; form-action 'none'; base-uri 'none'";

/**
 * The whole report page from rendered notebooks; `warning` (a diverged run) is shown above everything,
 * then `summary` (report-summary.ts, built from escaped data), then the notebooks.
 */
export function reportHtml(notebooks: RenderedNotebook[], meta: { title: string; subtitle: string; warning?: string; summary?: string }): string {
  const toc = join(
    notebooks.map((nb) => {
      const sub = nb.toc.filter((t) => t.level === 2).map((t) => el('li', {}, el('a', { href: `#${t.id}` }, t.text)));
      const err = nb.errors ? [' ', el('span', { class: 'errors' }, `(${nb.errors} error${nb.errors > 1 ? 's' : ''})`)] : null;
      return el('li', {}, el('a', { href: `#${nb.id}` }, nb.title), err, sub.length ? el('ol', {}, sub) : null);
    }),
    '\n',
  );
  const head = join([
    el('meta', { charset: 'utf-8' }),
    el('meta', { 'http-equiv': 'Content-Security-Policy', content: REPORT_CSP }),
    el('meta', { name: 'viewport', content: 'width=device-width, initial-scale=1' }),
    el('title', {}, meta.title),
    el('style', {}, trusted(STYLE + SUMMARY_STYLE)),
  ], '\n');
  const warning = meta.warning ? el('div', { class: 'warning', role: 'alert' }, el('strong', {}, 'Warning: '), meta.warning) : null;
  const body = join([
    el('header', { class: 'report' }, el('h1', {}, meta.title), el('div', { class: 'meta' }, meta.subtitle), warning),
    el('div', { class: 'layout' },
      el('nav', { class: 'toc', 'aria-label': 'Contents' }, el('strong', {}, 'Contents'), el('ol', {}, '\n', meta.summary ? el('li', {}, el('a', { href: '#summary' }, 'Result')) : null, toc, '\n')),
      el('main', {}, '\n', meta.summary ? trusted(meta.summary) : null, trusted(notebooks.map((nb) => nb.html).join('\n')), '\n')),
  ], '\n');
  return `<!DOCTYPE html>\n${el('html', { lang: 'en' }, el('head', {}, head), '\n', el('body', {}, '\n', body, '\n')).html}\n`;
}

/** The robustness chart of the run's evaluation.json as SVG, when it has a robustness table. */
async function robustnessChart(dir: string): Promise<string | undefined> {
  const r = readRobustness(readJsonObjectIfExists(path.join(dir, 'evaluation.json')));
  return r ? chartSvg(robustnessSpec(r)) : undefined;
}

/**
 * Writes <runDir>/report.html from the executed notebooks in <runDir>/notebooks/ and returns its
 * path. The page embeds everything and contains no script, so it opens offline in any browser.
 */
export async function writeReport(runDir: string, opts: ReportOptions = {}): Promise<string> {
  const dir = path.resolve(runDir);
  const files = runNotebooks(dir);
  if (!files.length) throw new Error(`${path.join(dir, 'notebooks')}: no executed notebooks (*.ipynb) to report; run \`npm start\` or the notebooks first`);
  for (const f of files) assertOneRun(f, path.basename(dir));
  svgCounter = 0;
  const rendered = files.map((f, index) => renderNotebook(f, { index }));
  // A folder without profile.json still gets a report of its notebooks; a damaged one is named.
  const profileName = String(readJsonObjectIfExists(path.join(dir, 'profile.json'), "the run's profile")?.name ?? '');
  const diverged = readDivergence(dir);
  const html = reportHtml(rendered, {
    warning: diverged ? `${describeDivergence(diverged)}. The model and the numbers below come from a broken training run (${path.basename(diverged.file)}).` : undefined,
    title: opts.title ?? `Run ${path.basename(dir)}`,
    subtitle: `${profileName ? `${headlineText(readHeadline(dir))} · profile ${profileName} · ` : ''}${rendered.length} notebooks · written ${new Date().toISOString()}`,
    summary: summarySection(dir, { robustnessChartSvg: await robustnessChart(dir) })?.html,
  });
  const out = opts.out ?? path.join(dir, 'report.html');
  assertSelfContained(html, out);
  writeFileAtomic(out, html);
  return out;
}
