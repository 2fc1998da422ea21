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
type Markdown = InstanceType<typeof MarkdownIt>;
import { paths } from '../config';
import { writeFileAtomic } from '../session';
import { headlineText, readHeadline, summarySection, SUMMARY_STYLE } from './report-summary';

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

export function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

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

/**
 * Makes an HTML fragment self-contained: no script, stylesheet link, frame or embedded object; every
 * image/source reference inlined as a data: URI or removed (keeping its alt text); CSS url()s and
 * @imports to anything but data: dropped. Links (<a href>) stay: a browser does not fetch them.
 */
export function sanitizeFragment(html: string, ctx: ResolveContext): string {
  let out = html
    .replace(/<script\b[\s\S]*?<\/script\s*>/gi, '')
    .replace(/<script\b[^>]*\/?>/gi, '')
    .replace(/<(iframe|object|embed|frame|audio|video)\b[\s\S]*?<\/\1\s*>/gi, '')
    .replace(/<(iframe|object|embed|frame|audio|video|base|meta|link)\b[^>]*>/gi, '')
    .replace(/@import[^;]*;/gi, '')
    .replace(/url\(\s*(['"]?)(?!data:|#)[^)'"]*\1\s*\)/gi, 'none');
  // src/srcset/href/xlink:href/poster/background on every tag except <a> (and SVG-internal #refs).
  out = out.replace(/<([a-zA-Z][\w:-]*)(\s[^<>]*?)?(\/?)>/g, (whole, tag: string, attrs: string | undefined, selfClose: string) => {
    if (!attrs) return whole;
    const isLink = tag.toLowerCase() === 'a';
    let dropTag = false;
    let alt = '';
    const altMatch = /\salt\s*=\s*("([^"]*)"|'([^']*)')/i.exec(attrs);
    if (altMatch) alt = altMatch[2] ?? altMatch[3] ?? '';
    const fixed = attrs.replace(
      /(\s)(src|srcset|href|xlink:href|poster|background|data)\s*=\s*("([^"]*)"|'([^']*)'|([^\s"'>]+))/gi,
      (attr, sp: string, name: string, _q: string, dq?: string, sq?: string, bare?: string) => {
        const value = (dq ?? sq ?? bare ?? '').trim();
        const lname = name.toLowerCase();
        if (isLink && lname === 'href') return attr;
        if (value.startsWith('#') || value === '') return attr;
        if (lname === 'srcset') return '';
        const inlined = resolveResource(value, ctx);
        if (inlined) return `${sp}${name}="${inlined}"`;
        if (tag.toLowerCase() === 'img') dropTag = true;
        return '';
      },
    );
    if (dropTag) return `<span class="missing-image">[image not embedded${alt ? `: ${escapeHtml(alt)}` : ''}]</span>`;
    return `<${tag}${fixed}${selfClose}>`;
  });
  return out;
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
      return text.trim() ? `<pre class="output stream ${o.name === 'stderr' ? 'stderr' : ''}">${escapeHtml(text)}</pre>` : '';
    }
    case 'error': {
      const tb = stripAnsi((o.traceback ?? []).join('\n')) || `${o.ename}: ${o.evalue}`;
      return `<pre class="output error">${escapeHtml(tb)}</pre>`;
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
          return `<div class="output html">${sanitizeFragment(mimeText(value), ctx)}</div>`;
        case 'image/svg+xml':
          return `<div class="output svg">${sanitizeFragment(scopeSvgIds(stripXmlProlog(mimeText(value))), ctx)}</div>`;
        case 'image/png':
        case 'image/jpeg':
        case 'image/gif':
          return `<div class="output image"><img alt="output image" src="data:${mime};base64,${mimeText(value).replace(/\s+/g, '')}"/></div>`;
        case 'text/markdown':
          return `<div class="output markdown">${sanitizeFragment(md.render(mimeText(value)), ctx)}</div>`;
        default:
          return `<pre class="output text">${escapeHtml(stripAnsi(mimeText(value)))}</pre>`;
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
  let nb: Notebook;
  try {
    nb = JSON.parse(fs.readFileSync(file, 'utf8')) as Notebook;
  } catch (e) {
    throw new Error(`${file}: not a readable notebook (${(e as Error).message})`);
  }
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
    if (cell.cell_type === 'markdown') return `<div class="cell markdown">${sanitizeFragment(md.render(source), ctx)}</div>`;
    if (cell.cell_type === 'raw') return source.trim() ? `<pre class="cell raw">${escapeHtml(source)}</pre>` : '';
    const outputs = (cell.outputs ?? []).map((o) => {
      if (o.output_type === 'error') errors++;
      return renderOutput(o, md, ctx);
    });
    const prompt = cell.execution_count ? `[${cell.execution_count}]` : '[ ]';
    return (
      `<div class="cell code" id="${id}-cell-${i}">` +
      // Code folds away (CSS-only <details>, no script); its first line says what it is.
      `<details class="code"><summary>${prompt} ${escapeHtml(source.split('\n')[0].slice(0, 100))}</summary>` +
      `<div class="input"><span class="prompt">${prompt}</span><pre><code>${escapeHtml(source)}</code></pre></div></details>` +
      (outputs.join('') ? `<div class="outputs">${outputs.join('')}</div>` : '') +
      `</div>`
    );
  });
  const firstHeading = toc.find((t) => t.level === 1) ?? toc[0];
  const title = firstHeading?.text || name;
  return {
    id,
    file,
    title,
    html: `<section class="notebook" id="${id}" data-notebook="${escapeHtml(path.basename(file))}">\n${cells.join('\n')}\n</section>`,
    toc: toc.filter((t) => t !== firstHeading && t.level <= 3),
    errors,
  };
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
@media print { nav.toc { display:none; } }
`;

/** Throws if the page would make the browser fetch anything: every src/href outside <a> must be data: or #. */
export function assertSelfContained(html: string, origin = 'report'): void {
  const bad: string[] = [];
  for (const m of html.matchAll(/<([a-zA-Z][\w:-]*)\b([^<>]*)>/g)) {
    const tag = m[1].toLowerCase();
    if (tag === 'script' && /\ssrc\s*=/.test(m[2])) bad.push(m[0].slice(0, 120));
    if (tag === 'link') {
      bad.push(m[0].slice(0, 120));
      continue;
    }
    for (const a of m[2].matchAll(/\s(src|srcset|href|xlink:href|poster|background)\s*=\s*("([^"]*)"|'([^']*)'|([^\s"'>]+))/gi)) {
      const value = (a[3] ?? a[4] ?? a[5] ?? '').trim();
      if (tag === 'a' && a[1].toLowerCase() === 'href') continue;
      if (value === '' || value.startsWith('#') || value.startsWith('data:')) continue;
      bad.push(`<${tag} ${a[1]}="${value.slice(0, 80)}">`);
    }
  }
  // CSS lives in <style> blocks and style="" attributes; code shown as text (escaped) is not CSS.
  const css = [...html.matchAll(/<style\b[^>]*>([\s\S]*?)<\/style>/gi)].map((m) => m[1]);
  for (const m of html.matchAll(/\sstyle\s*=\s*("([^"]*)"|'([^']*)')/gi)) css.push(m[2] ?? m[3] ?? '');
  for (const block of css) {
    for (const m of block.matchAll(/url\(\s*['"]?([^)'"]*)/gi)) if (!/^(data:|#)/.test(m[1].trim())) bad.push(`url(${m[1].slice(0, 80)})`);
    if (/@import/i.test(block)) bad.push('@import');
  }
  if (bad.length) throw new Error(`${origin}: would load ${bad.length} external resource(s), e.g. ${bad.slice(0, 3).join(', ')}`);
}

/** The whole report page from rendered notebooks. */
export function reportHtml(notebooks: RenderedNotebook[], meta: { title: string; subtitle: string; summary?: string }): string {
  const toc = notebooks
    .map((nb) => {
      const sub = nb.toc.filter((t) => t.level === 2).map((t) => `<li><a href="#${t.id}">${escapeHtml(t.text)}</a></li>`).join('');
      const err = nb.errors ? ` <span class="errors">(${nb.errors} error${nb.errors > 1 ? 's' : ''})</span>` : '';
      return `<li><a href="#${nb.id}">${escapeHtml(nb.title)}</a>${err}${sub ? `<ol>${sub}</ol>` : ''}</li>`;
    })
    .join('\n');
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(meta.title)}</title>
<style>${STYLE}${SUMMARY_STYLE}</style></head>
<body>
<header class="report"><h1>${escapeHtml(meta.title)}</h1><div class="meta">${escapeHtml(meta.subtitle)}</div></header>
<div class="layout">
<nav class="toc" aria-label="Contents"><strong>Contents</strong><ol>
${meta.summary ? '<li><a href="#summary">Result</a></li>' : ''}
${toc}
</ol></nav>
<main>
${meta.summary ?? ''}
${notebooks.map((nb) => nb.html).join('\n')}
</main></div>
</body></html>
`;
}

/**
 * Writes <runDir>/report.html from the executed notebooks in <runDir>/notebooks/ and returns its
 * path. The page embeds everything and contains no script, so it opens offline in any browser.
 */
export async function writeReport(runDir: string, opts: ReportOptions = {}): Promise<string> {
  const dir = path.resolve(runDir);
  const files = runNotebooks(dir);
  if (!files.length) throw new Error(`${path.join(dir, 'notebooks')}: no executed notebooks (*.ipynb) to report; run \`npm start\` or the notebooks first`);
  svgCounter = 0;
  const rendered = files.map((f, index) => renderNotebook(f, { index }));
  let profileName = '';
  try {
    profileName = (JSON.parse(fs.readFileSync(path.join(dir, 'profile.json'), 'utf8')) as { name?: string }).name ?? '';
  } catch {
    // a folder without profile.json still gets a report of its notebooks
  }
  const html = reportHtml(rendered, {
    title: opts.title ?? `Run ${path.basename(dir)}`,
    subtitle: `${profileName ? `${headlineText(readHeadline(dir))} · profile ${profileName} · ` : ''}${rendered.length} notebooks · written ${new Date().toISOString()}`,
    summary: summarySection(dir)?.value,
  });
  const out = opts.out ?? path.join(dir, 'report.html');
  assertSelfContained(html, out);
  writeFileAtomic(out, html);
  return out;
}
