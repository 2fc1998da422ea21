/**
 * The report's first section: the result and how it was made, read from the run's own files
 * (profile.json, train-summary.json, train-state.json, evaluation.json), so the reader sees the test
 * accuracy, the setup and the command that makes the run again before any notebook.
 */
import * as path from 'node:path';
import { readJsonObjectIfExists } from '../fsutil';
import { reproduceCommand } from './study';
import { html, Html, trusted } from '../html';
import { svgImgHtml } from '../display';
import type { Profile } from '../config';
import { phasePlans } from '../train/plan';
import type { RobustnessSummary } from './robustness';

const pct = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? `${(100 * v).toFixed(1)}%` : '-');
const count = (n: unknown) => (typeof n === 'number' ? n.toLocaleString('en-US') : '?');

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '-';
  if (seconds < 90) return `${seconds.toFixed(0)} s`;
  if (seconds < 5400) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

/** The numbers a terminal prints at the end of a run (and the summary leads with). */
export interface Headline {
  testAccuracy: number | null;
  testCount: number | null;
  valAccuracy: number | null;
  status: string;
}

export function readHeadline(runDir: string): Headline {
  const evaluation = readJsonObjectIfExists(path.join(runDir, 'evaluation.json'));
  const summary = readJsonObjectIfExists(path.join(runDir, 'train-summary.json'));
  const state = readJsonObjectIfExists(path.join(runDir, 'train-state.json'));
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  return {
    testAccuracy: num(evaluation?.accuracy),
    testCount: num(evaluation?.count),
    valAccuracy: num(summary?.finalValAccuracy),
    status: typeof state?.status === 'string' ? state.status : summary ? 'finished' : 'not trained',
  };
}

/** One line: "test accuracy 57.2% on 500 test images (validation 60.1%)". */
export function headlineText(h: Headline): string {
  if (h.testAccuracy === null) return `no test accuracy yet (training: ${h.status})`;
  const val = h.valAccuracy !== null ? ` (validation ${pct(h.valAccuracy)})` : '';
  return `test accuracy ${pct(h.testAccuracy)} on ${count(h.testCount)} test images${val}`;
}

function phaseRows(profile: Profile, summary: Record<string, unknown> | null): Html[] {
  const ran = (summary?.phases ?? []) as { name: string; ran: boolean; reason: string; epochs: number }[];
  if (!Array.isArray(profile.train?.phases)) return [];
  return phasePlans(profile).map((p) => {
    const r = ran[p.index];
    const epochs = r ? (r.ran ? `${r.epochs} of ${p.epochs}` : `skipped: ${r.reason}`) : `${p.epochs} planned`;
    return html`<tr><td>${p.index + 1}. ${p.name}</td><td>${p.trains}</td><td>${p.input}</td><td>${p.optimizer}</td><td>${p.rate}</td><td>${p.batchSize}</td><td>${epochs}</td></tr>`;
  });
}

/**
 * What the report says about the training images: per-class counts (marked when the largest class
 * is more than 5x the smallest), the class weights if any, and the unreadable files left out.
 */
function trainingDataRows(summary: Record<string, unknown> | null, evaluation: Record<string, unknown> | null): Html[] {
  const rows: Html[] = [];
  const counts = Array.isArray(summary?.trainPerClass) ? (summary.trainPerClass as number[]) : [];
  const names = Array.isArray(evaluation?.classes) ? (evaluation.classes as string[]) : Array.isArray(summary?.classes) ? (summary.classes as string[]) : [];
  if (counts.length) {
    const max = Math.max(...counts);
    const min = Math.min(...counts);
    const ratio = min > 0 ? max / min : Infinity;
    const list = counts.map((n, i) => `${names[i] ?? `class ${i}`} ${n}`).join(' · ');
    const note = ratio > 5 ? html` <b>imbalanced: the largest class has ${Number.isFinite(ratio) ? ratio.toFixed(1) : 'infinitely many'}x the images of the smallest</b>` : '';
    rows.push(html`<tr><th>training images per class</th><td>${list}${note}</td></tr>`);
  }
  if (Array.isArray(summary?.classWeights)) {
    const w = (summary.classWeights as number[]).map((x, i) => `${names[i] ?? `class ${i}`} ${x.toFixed(3)}`).join(' · ');
    rows.push(html`<tr><th>class weights (balanced)</th><td>${w}</td></tr>`);
  }
  if (Array.isArray(summary?.unreadableFiles)) {
    const files = summary.unreadableFiles as { file: string; reason: string }[];
    rows.push(
      files.length
        ? html`<tr><th>unreadable files skipped</th><td><details><summary>${files.length} file${files.length === 1 ? '' : 's'}</summary><ul>${files.map((f) => html`<li><code>${f.file}</code>: ${f.reason}</li>`)}</ul></details></td></tr>`
        : html`<tr><th>unreadable files skipped</th><td>none</td></tr>`,
    );
  }
  return rows;
}

/** evaluation.json's robustness table when it has one with the expected shape, else null. */
export function readRobustness(evaluation: Record<string, unknown> | null): RobustnessSummary | null {
  const r = evaluation?.robustness as RobustnessSummary | undefined;
  if (!r || typeof r !== 'object' || !Array.isArray(r.corruptions) || typeof r.clean?.accuracy !== 'number') return null;
  return r;
}

/** The robustness table (clean, each corruption, the mean) and, when rendered, its chart as an <img>. */
export function robustnessSection(r: RobustnessSummary, chartSvg?: string): Html {
  const points = (v: number) => (100 * v).toFixed(2);
  const pct2 = (v: number | null) => (v === null ? '-' : `${points(v)}%`);
  const tta = r.clean.ttaAccuracy !== null && r.corruptions.every((c) => c.ttaAccuracy !== null);
  const row = (name: string, accuracy: number, drop: number | null, ttaAccuracy: number | null, params = '') =>
    html`<tr><td>${name}</td><td class="num">${pct2(accuracy)}</td><td class="num">${drop === null ? '-' : points(drop)}</td>${tta ? html`<td class="num">${pct2(ttaAccuracy)}</td>` : ''}<td>${params}</td></tr>`;
  return html`<h3 id="robustness">Robustness: the test set corrupted</h3>
<p>Each of the ${count(r.count)} test images corrupted in memory (seed ${r.seed}) and scored like the clean set. ${r.source}; codec ${r.codec}.</p>
${chartSvg ? trusted(svgImgHtml(chartSvg, 'test accuracy, clean and corrupted')) : ''}
<table class="phases robustness"><caption>accuracy clean and under each corruption (drop: points below clean)</caption>
<tr><th>test set</th><th>accuracy</th><th>drop</th>${tta ? html`<th>with flip TTA</th>` : ''}<th>parameters</th></tr>
${row('clean', r.clean.accuracy, null, r.clean.ttaAccuracy)}
${r.corruptions.map((c) => row(c.label, c.accuracy, c.drop, c.ttaAccuracy, Object.entries(c.params).map(([k, v]) => `${k} ${v}`).join(', ')))}
${row('mean over corruptions', r.meanAccuracy, r.clean.accuracy - r.meanAccuracy, r.meanTtaAccuracy)}
</table>`;
}

/**
 * The summary section as HTML (built from escaped data only), or null when the folder has no profile.
 * `robustnessChartSvg`: the robustness chart rendered by the caller (rendering is async).
 */
export function summarySection(runDir: string, opts: { robustnessChartSvg?: string } = {}): Html | null {
  const profile = readJsonObjectIfExists(path.join(runDir, 'profile.json'));
  if (!profile) return null;
  const summary = readJsonObjectIfExists(path.join(runDir, 'train-summary.json'));
  const evaluation = readJsonObjectIfExists(path.join(runDir, 'evaluation.json'));
  const h = readHeadline(runDir);
  const model = (profile.model ?? {}) as { arch?: string; head?: string; inputSize?: number; weights?: string; initFrom?: string };
  const data = (profile.data ?? {}) as { imageSize?: number; source?: string };
  const perClass = ((evaluation?.perClass ?? []) as { class: string; recall: number; support: number }[]).filter((c) => c.support > 0);
  const byRecall = [...perClass].sort((a, b) => b.recall - a.recall);
  const classes = (list: typeof perClass) => list.map((c) => `${c.class} ${pct(c.recall)}`).join(' · ');
  const threads = typeof summary?.threads === 'number' ? `, ${summary.threads} thread${summary.threads > 1 ? 's' : ''}` : '';
  const tta = evaluation?.tta as { accuracy?: number } | null | undefined;
  const valSource =
    summary?.valSource === 'test' ? 'the test set, as the article does' : `held out from the training set${summary?.valSplit === 'stratified' ? ', the same share of every class' : ''}`;
  const dataRows = trainingDataRows(summary, evaluation);
  const robustness = readRobustness(evaluation);
  return html`<section class="summary" id="summary">
<h2>Result</h2>
<p class="headline"><span class="big">${pct(h.testAccuracy)}</span> test accuracy on ${count(h.testCount)} test images${
    h.testAccuracy === null ? html` <em>(no evaluation.json: ${h.status})</em>` : ''
  }</p>
<table class="facts">
<tr><th>validation</th><td>${pct(h.valAccuracy)} (${valSource})</td></tr>
${tta?.accuracy !== undefined ? html`<tr><th>with flip TTA</th><td>${pct(tta.accuracy)}</td></tr>` : ''}
${robustness ? html`<tr><th>mean corruption accuracy</th><td>${pct(robustness.meanAccuracy)} over ${robustness.corruptions.length} corruptions (<a href="#robustness">table</a>)</td></tr>` : ''}
${byRecall.length ? html`<tr><th>best classes (recall)</th><td>${classes(byRecall.slice(0, 3))}</td></tr><tr><th>worst classes</th><td>${classes(byRecall.slice(-3).reverse())}</td></tr>` : ''}
${dataRows}
<tr><th>backbone</th><td>${model.arch ?? '?'}, head ${model.head ?? '?'}, weights ${model.weights ?? '?'}${model.initFrom ? html`; training started from the trained model ${model.initFrom} (model.initFrom)` : ''}</td></tr>
<tr><th>resolution</th><td>${model.inputSize ?? '?'}×${model.inputSize ?? '?'} seen by the backbone (images stored at ${data.imageSize ?? '?'}×${data.imageSize ?? '?'})</td></tr>
<tr><th>training time</th><td>${typeof summary?.wallSeconds === 'number' ? formatDuration(summary.wallSeconds) : `- (${h.status})`}</td></tr>
<tr><th>backend</th><td>${typeof summary?.backend === 'string' ? `${summary.backend}${threads}` : '-'}</td></tr>
<tr><th>reproduce</th><td><code>${reproduceCommand(profile)}</code></td></tr>
</table>
<table class="phases"><caption>phases</caption>
<tr><th>phase</th><th>trains</th><th>on</th><th>optimizer</th><th>learning rate</th><th>batch</th><th>epochs</th></tr>
${phaseRows(profile as unknown as Profile, summary)}
</table>
${robustness ? robustnessSection(robustness, opts.robustnessChartSvg) : ''}
<details><summary>resolved profile (profile.json)</summary><pre>${JSON.stringify(profile, null, 2)}</pre></details>
</section>`;
}

export const SUMMARY_STYLE = `
section.summary { margin:16px 0 8px; }
section.summary h2 { margin:0 0 6px; }
.headline { font-size:17px; margin:4px 0 10px; } .headline .big { font-size:30px; font-weight:600; }
table.facts th { text-align:left; font-weight:normal; color:var(--muted); padding:2px 14px 2px 0; vertical-align:top; }
table.facts td, table.phases td, table.phases th { padding:2px 8px; }
table.phases { border-collapse:collapse; margin:10px 0; font-size:13px; } table.phases caption { text-align:left; color:var(--muted); }
table.phases td, table.phases th { border:1px solid var(--line); }
table.robustness td.num { text-align:right; font-variant-numeric:tabular-nums; }
details > summary { cursor:pointer; color:var(--accent); }
details.code > summary { font:12px monospace; color:var(--muted); }
`;
