/**
 * The one way the report's own pages are built: a tagged template whose interpolations are
 * entity-escaped unless they are Html made by this same tag. Attribute values must be written
 * double-quoted in the template (`<a href="${x}">`); escaping covers &, <, > and ".
 * Foreign HTML (notebook outputs) never goes through here: the report sanitizes it separately.
 */
import { escapeHtml } from '../display';

export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

type Part = Html | string | number | null | undefined | false | Part[];

function render(part: Part): string {
  if (part === null || part === undefined || part === false) return '';
  if (part instanceof Html) return part.value;
  if (Array.isArray(part)) return part.map(render).join('');
  return escapeHtml(String(part)).replace(/'/g, '&#39;');
}

export function html(strings: TemplateStringsArray, ...values: Part[]): Html {
  let out = strings[0];
  values.forEach((v, i) => (out += render(v) + strings[i + 1]));
  return new Html(out);
}

/** Markup this module did not build but that is trusted as is: SVG rendered by vega from our own specs. */
export function trustedSvg(svg: string): Html {
  if (!/^\s*<svg[\s>]/.test(svg)) throw new Error('trustedSvg: expected an <svg> element');
  return new Html(svg);
}
