/**
 * The one way HTML is built from data in this project: text is entity-escaped, every attribute
 * value is quoted and entity-escaped, and tag and attribute names are checked. Markup from
 * elsewhere (notebook outputs) is never concatenated raw: it goes through the report's
 * parser-based sanitizer instead.
 */

/** Escapes text for an element's content or a quoted attribute value (both quote kinds). */
export function escapeHtml(s: string): string {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** Attribute values: a string or number is written, true writes the bare name, false/null/undefined leaves it out. */
export type AttrValue = string | number | boolean | null | undefined;
export type Attrs = Record<string, AttrValue>;

const NAME = /^[a-zA-Z][a-zA-Z0-9:_-]*$/;
const VOID = new Set(['area', 'br', 'col', 'hr', 'img', 'input', 'meta', 'source', 'wbr']);

/** Already-built markup: the only thing `el` inserts unescaped. */
export class Html {
  constructor(readonly html: string) {}
  toString(): string {
    return this.html;
  }
}

/** Marks markup that was built by `el` or cleaned by the sanitizer, so `el` inserts it as is. */
export function trusted(html: string): Html {
  return new Html(html);
}

export type Child = Html | string | number | null | undefined | false | Child[];

function renderChild(c: Child): string {
  if (c === null || c === undefined || c === false) return '';
  if (Array.isArray(c)) return c.map(renderChild).join('');
  if (c instanceof Html) return c.html;
  return escapeHtml(String(c));
}

/** ` a="v" b` from attributes: names checked, values always double-quoted and escaped. */
export function attrs(a: Attrs): string {
  let out = '';
  for (const [name, value] of Object.entries(a)) {
    if (!NAME.test(name)) throw new Error(`html: invalid attribute name ${JSON.stringify(name)}`);
    if (/^on/i.test(name)) throw new Error(`html: event-handler attribute ${name} is never written`);
    if (value === false || value === null || value === undefined) continue;
    out += value === true ? ` ${name}` : ` ${name}="${escapeHtml(String(value))}"`;
  }
  return out;
}

/** One element: `el('img', { src, alt })`, `el('td', { class: 'num' }, text)`. Children are escaped unless `Html`. */
export function el(tag: string, a: Attrs = {}, ...children: Child[]): Html {
  if (!NAME.test(tag)) throw new Error(`html: invalid tag name ${JSON.stringify(tag)}`);
  if (/^script$/i.test(tag)) throw new Error('html: <script> is never written');
  const open = `<${tag}${attrs(a)}`;
  if (VOID.has(tag.toLowerCase())) return new Html(`${open}/>`);
  return new Html(`${open}>${renderChild(children)}</${tag}>`);
}

/** Joins built pieces into one. */
export function join(parts: Child[], sep = ''): Html {
  return new Html(parts.map(renderChild).join(sep));
}

/**
 * The same escaping as a tagged template, for pages written as markup: every interpolation is
 * escaped unless it is Html; attribute values must be double-quoted in the template (`<a href="${x}">`).
 */
export function html(strings: TemplateStringsArray, ...values: Child[]): Html {
  let out = strings[0];
  values.forEach((v, i) => (out += renderChild(v) + strings[i + 1]));
  return new Html(out);
}

/** Markup not built here but trusted as is: SVG rendered by vega from the project's own specs. */
export function trustedSvg(svg: string): Html {
  if (!/^\s*<svg[\s>]/.test(svg)) throw new Error('trustedSvg: expected an <svg> element');
  return new Html(svg);
}
