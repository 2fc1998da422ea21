/**
 * `report --compare <run>...`: several runs on one self-contained page - the comparison table,
 * their curves overlaid, and every profile field in which they differ. Built from escaped data
 * (./html) and a chart SVG rendered from our own spec; no script, nothing fetched.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { chartSvg } from '../display';
import { readJsonObjectIfExists, writeFileAtomic } from '../fsutil';
import { assertSelfContained } from './report';
import { machinesLine, studyCurvesSpec, studyRow, testColumn, type StudyRow } from './study';
import { html, Html, trustedSvg } from '../html';
import { SUMMARY_STYLE, formatDuration } from './report-summary';

/** Leaves of a JSON value as key.path -> JSON text (arrays by index, as --set names them). */
export function flattenProfile(value: unknown, prefix = '', out = new Map<string, string>()): Map<string, string> {
  if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) flattenProfile(v, prefix ? `${prefix}.${k}` : k, out);
  } else {
    out.set(prefix, typeof value === 'string' ? value : JSON.stringify(value));
  }
  return out;
}

/** The profile fields whose values are not the same in every run: one row per field, one value per run. */
export function profileDifferences(profiles: unknown[]): { field: string; values: (string | null)[] }[] {
  const flat = profiles.map((p) => flattenProfile(p));
  const fields = [...new Set(flat.flatMap((f) => [...f.keys()]))].sort();
  return fields
    .map((field) => ({ field, values: flat.map((f) => f.get(field) ?? null) }))
    .filter((d) => new Set(d.values).size > 1 && d.field !== 'description');
}

const pct = (v: number | null) => (v === null ? '-' : `${(100 * v).toFixed(2)}%`);

function tableHtml(rows: StudyRow[]) {
  const test = testColumn(rows);
  const tta = rows.some((r) => r.ttaAccuracy !== null);
  const robust = rows.some((r) => r.meanCorruptionAccuracy !== null);
  return html`<table class="compare">
<tr><th>run</th><th>profile</th><th>${test.label}</th>${tta ? html`<th>with flip TTA</th>` : ''}${robust ? html`<th>mean corruption accuracy</th>` : ''}<th>validation</th><th>train time</th><th>backend</th><th>resolution</th><th>epochs</th><th>command</th></tr>
${rows.map(
  (r) => html`<tr><td>${r.run}${r.diverged ? html` <strong class="diverged">diverged</strong> (${r.diverged})` : ''}</td><td>${r.profile}</td><td>${test.cell(r)}</td>${tta ? html`<td>${pct(r.ttaAccuracy)}</td>` : ''}${robust ? html`<td>${pct(r.meanCorruptionAccuracy)}</td>` : ''}<td>${pct(r.valAccuracy)}</td><td>${
    r.trainMinutes === null ? '-' : formatDuration(r.trainMinutes * 60)
  }</td><td>${r.backend ?? '-'}</td><td>${r.resolution === null ? '-' : `${r.resolution}×${r.resolution}`}</td><td>${r.epochs}</td><td><code>${r.command}</code></td></tr>`,
)}
</table>
<p class="muted">${machinesLine(rows)}</p>`;
}

const STYLE = `
:root { --fg:#1f2328; --muted:#59636e; --line:#d1d9e0; --code:#f6f8fa; --accent:#0969da; }
body { margin:0 auto; max-width:1200px; padding:16px 28px 60px; font:15px/1.5 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color:var(--fg); }
table { border-collapse:collapse; font-size:13px; margin:8px 0 20px; } th, td { border:1px solid var(--line); padding:3px 8px; text-align:left; vertical-align:top; }
th { background:var(--code); } code { font-size:12px; } .chart svg { max-width:100%; height:auto; } .muted { color:var(--muted); }
`;

/** The comparison page as HTML text. */
export async function comparePageHtml(runDirs: string[]): Promise<string> {
  if (runDirs.length < 2) throw new Error(`report --compare: give two or more run folders (got ${runDirs.length})`);
  const rows = runDirs.map((d) => studyRow(d));
  const profiles = runDirs.map((d) => readJsonObjectIfExists(path.join(d, 'profile.json')));
  const diffs = profileDifferences(profiles);
  const curves = trustedSvg(await chartSvg(studyCurvesSpec(runDirs) as never));
  const title = `Comparing ${rows.length} runs`;
  const page = html`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<style>${new Html(STYLE + SUMMARY_STYLE)}</style></head>
<body>
<h1>${title}</h1>
<p class="muted">${rows.map((r) => r.run).join(' · ')} · written ${new Date().toISOString()}</p>
<h2>Results</h2>
${tableHtml(rows)}
<h2>Curves</h2>
<div class="chart">${curves}</div>
<h2>Profile differences</h2>
${
  diffs.length
    ? html`<table class="diff"><tr><th>field</th>${rows.map((r) => html`<th>${r.run}</th>`)}</tr>
${diffs.map((d) => html`<tr><td><code>${d.field}</code></td>${d.values.map((v) => html`<td>${v ?? '(absent)'}</td>`)}</tr>`)}
</table>`
    : html`<p>The runs used the same profile.</p>`
}
</body></html>
`;
  return page.html;
}

/** Writes the comparison page (atomically) and returns its path. */
export async function writeComparePage(runDirs: string[], out: string): Promise<string> {
  for (const d of runDirs) if (!fs.existsSync(path.join(d, 'profile.json'))) throw new Error(`${d}: not a run folder (no profile.json)`);
  const page = await comparePageHtml(runDirs);
  assertSelfContained(page, out);
  writeFileAtomic(out, page);
  return out;
}
