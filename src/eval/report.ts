/**
 * `qwenlong report RUN_DIR`: one self-contained HTML file (inline SVG, no scripts, no network) from a run's
 * metrics.jsonl, config.json and summary.json: reward and entropy curves with AEPO's switches marked, per-task
 * accuracy, response length and gradient norm, and the held-out scores before and after.
 */
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { StepRecord } from '../rl/trainer.js';

interface Series {
  name: string;
  points: [number, number][];
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf'];

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** A running mean over `w` points, so noisy per-step curves read as trends (the raw points stay faint). */
/**
 * The mean of each point's window of the last w values, NaN where the window holds a non-finite one. A running sum
 * over the finite values and a count of the others (summing every window was O(n·w), and w grows with the run).
 */
export function smooth(points: [number, number][], w: number): [number, number][] {
  let sum = 0, bad = 0;
  return points.map(([x, y], i) => {
    if (Number.isFinite(y)) sum += y;
    else bad++;
    if (i >= w) {
      const out = points[i - w]![1];
      if (Number.isFinite(out)) sum -= out;
      else bad--;
    }
    return [x, bad > 0 ? NaN : sum / Math.min(i + 1, w)];
  });
}

function ticks(lo: number, hi: number, n = 5): number[] {
  if (hi <= lo) return [lo];
  const raw = (hi - lo) / n, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-12; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function fmt(v: number): string {
  return Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(1) : String(Number(v.toPrecision(3)));
}

/** A line chart as an SVG string; `marks` are vertical lines (step, label). */
export function lineChart(title: string, series: Series[], opts: { marks?: { x: number; label: string }[]; yLabel?: string; smoothing?: number; colorOffset?: number } = {}): string {
  const W = 560, H = 260, L = 56, R = 12, T = 28, B = 36;
  const all = series.flatMap((s) => s.points).filter(([, y]) => Number.isFinite(y));
  if (all.length === 0) return `<figure><figcaption>${esc(title)}</figcaption><p class="empty">no data</p></figure>`;
  // reduced, not spread into Math.min: a spread of more points than the stack holds (8 curves of 16k steps) threw
  const min = (v: number[]) => v.reduce((a, b) => Math.min(a, b)), max = (v: number[]) => v.reduce((a, b) => Math.max(a, b));
  const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
  const x0 = min(xs), x1 = Math.max(max(xs), x0 + 1);
  let y0 = min(ys), y1 = max(ys);
  if (y1 - y0 < 1e-9) [y0, y1] = [y0 - 0.5, y1 + 0.5];
  const pad = (y1 - y0) * 0.05;
  y0 -= pad;
  y1 += pad;
  const sx = (x: number) => L + ((x - x0) / (x1 - x0)) * (W - L - R), sy = (y: number) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  const path = (pts: [number, number][]) => pts.filter(([, y]) => Number.isFinite(y)).map(([x, y], i) => `${i ? 'L' : 'M'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join('');
  const parts: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(title)}">`];
  parts.push(`<text x="${L}" y="16" class="t">${esc(title)}</text>`);
  for (const v of ticks(y0, y1)) parts.push(`<line x1="${L}" x2="${W - R}" y1="${sy(v)}" y2="${sy(v)}" class="g"/><text x="${L - 6}" y="${sy(v) + 4}" class="yl">${fmt(v)}</text>`);
  for (const v of ticks(x0, x1, 6)) parts.push(`<text x="${sx(v)}" y="${H - B + 16}" class="xl">${fmt(v)}</text>`);
  parts.push(`<text x="${(L + W - R) / 2}" y="${H - 4}" class="xl">step</text>`);
  if (opts.yLabel) parts.push(`<text x="12" y="${(T + H - B) / 2}" class="yl" transform="rotate(-90 12 ${(T + H - B) / 2})">${esc(opts.yLabel)}</text>`);
  for (const m of opts.marks ?? []) parts.push(`<line x1="${sx(m.x)}" x2="${sx(m.x)}" y1="${T}" y2="${H - B}" class="m"><title>${esc(m.label)}</title></line>`);
  series.forEach((s, i) => {
    const c = COLORS[(i + (opts.colorOffset ?? 0)) % COLORS.length];
    const w = opts.smoothing ?? 1;
    if (w > 1) parts.push(`<path d="${path(s.points)}" stroke="${c}" class="raw"/>`);
    parts.push(`<path d="${path(w > 1 ? smooth(s.points, w) : s.points)}" stroke="${c}" class="l"/>`);
  });
  const legend = series.map((s, i) => `<span><i style="background:${COLORS[(i + (opts.colorOffset ?? 0)) % COLORS.length]}"></i>${esc(s.name)}</span>`).join('');
  parts.push('</svg>');
  return `<figure>${parts.join('')}<figcaption>${legend}${opts.marks?.length ? '<span><i class="mk"></i>AEPO switch</span>' : ''}</figcaption></figure>`;
}

export function readMetrics(runDir: string): StepRecord[] {
  const path = join(runDir, 'metrics.jsonl');
  if (!existsSync(path)) throw new Error(`report: no metrics.jsonl in ${runDir}`);
  const out: StepRecord[] = [];
  readFileSync(path, 'utf8').split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    try {
      out.push(JSON.parse(line) as StepRecord);
    } catch {
      throw new Error(`report: ${path}:${i + 1} is not JSON`);
    }
  });
  return out;
}

/** The report's HTML for a run folder. */
export function renderReport(runDir: string): string {
  const records = readMetrics(runDir);
  if (records.length === 0) throw new Error(`report: ${join(runDir, 'metrics.jsonl')} has no steps yet`);
  const json = (file: string): unknown => {
    const path = join(runDir, file);
    if (!existsSync(path)) return undefined;
    try {
      return JSON.parse(readFileSync(path, 'utf8'));
    } catch (e) {
      throw new Error(`report: ${path} is not JSON (${(e as Error).message})`);
    }
  };
  const config = (json('config.json') ?? {}) as Record<string, unknown>;
  const summary = (json('summary.json') ?? null) as { before?: { macro: number; byTask: Record<string, { score: number; n: number }> }; after?: { macro: number; byTask: Record<string, { score: number; n: number }> } | null } | null;
  const tasks = [...new Set(records.flatMap((r) => Object.keys(r.rewardByTask)))].sort();
  const pts = (f: (r: StepRecord) => number | null | undefined): [number, number][] => records.map((r) => [r.step, f(r) ?? NaN]);
  const marks = records.filter((r) => r.aepoSwitched).map((r) => ({ x: r.step, label: `step ${r.step}: AEPO ${r.aepoOn ? 'on (negative gradients dropped)' : 'off'}` }));
  const sm = Math.max(1, Math.round(records.length / 25));
  const charts = [
    lineChart('Rollout reward', [{ name: 'mean', points: pts((r) => r.rewardMean) }, ...tasks.map((t) => ({ name: t, points: pts((r) => r.rewardByTask[t]) }))], { marks, smoothing: sm }),
    lineChart('Batch entropy (nats/token)', [{ name: 'entropy', points: pts((r) => r.batchEntropy) }], { marks, smoothing: 1 }),
    lineChart('Rollout accuracy per task (reward = 1)', tasks.map((t) => ({ name: t, points: pts((r) => r.accuracyByTask[t]) })), { marks, smoothing: sm, colorOffset: 1 }),
    lineChart('Groups with equal rewards', [{ name: 'zero-variance groups', points: pts((r) => r.zeroVarianceGroups) }], { smoothing: sm }),
    lineChart('Response length (tokens)', [{ name: 'mean', points: pts((r) => r.responseTokensMean) }], { smoothing: sm }),
    lineChart('Gradient norm (before clipping) and NLL', [{ name: 'grad norm', points: pts((r) => r.gradNorm) }, { name: 'nll', points: pts((r) => r.nll) }], { smoothing: sm }),
  ];
  const skipped = records.filter((r) => r.skipped);
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
  const heldRows = summary?.before
    ? Object.keys(summary.before.byTask)
        .map((t) => `<tr><td>${esc(t)}</td><td>${summary.before!.byTask[t]!.n}</td><td>${summary.before!.byTask[t]!.score.toFixed(3)}</td><td>${summary.after ? summary.after.byTask[t]!.score.toFixed(3) : '–'}</td></tr>`)
        .join('') + `<tr class="tot"><td>macro</td><td></td><td>${summary.before.macro.toFixed(3)}</td><td>${summary.after ? summary.after.macro.toFixed(3) : '–'}</td></tr>`
    : '';
  const facts: [string, string][] = [
    ['steps', String(records.length)],
    ['AEPO switches', `${marks.length}${marks.length === 0 && config.aepo ? ' (never switched: this run equals its arm without AEPO)' : ''}`],
    ['skipped steps', String(skipped.length)],
    ['rollout tokens/s (mean)', fmt(mean(records.map((r) => r.rolloutTokensPerS)))],
    ['train tokens/s (mean)', fmt(mean(records.filter((r) => r.trainTokensPerS > 0).map((r) => r.trainTokensPerS)))],
    ['step time (mean, s)', fmt(mean(records.map((r) => r.stepSeconds)))],
  ];
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>qwenlong run report</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1180px;color:#222}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:12px}
figure{margin:0;border:1px solid #ddd;border-radius:6px;padding:6px}
figcaption span{margin-right:12px;font-size:12px}figcaption i{display:inline-block;width:12px;height:3px;margin-right:4px;vertical-align:middle}
i.mk{background:#999;height:10px;width:2px}
svg .t{font-weight:600;font-size:13px}svg .g{stroke:#eee}svg .yl{font-size:11px;text-anchor:end;fill:#555}svg .xl{font-size:11px;text-anchor:middle;fill:#555}
svg .l{fill:none;stroke-width:2}svg .raw{fill:none;stroke-width:1;opacity:.25}svg .m{stroke:#999;stroke-dasharray:4 3}
table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:right}td:first-child,th:first-child{text-align:left}
tr.tot td{font-weight:600}.empty{color:#888}code{background:#f4f4f4;padding:1px 4px}
</style></head><body>
<h1>Run report: ${esc(String(config.algo ?? 'run'))}</h1>
<table>${facts.map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`).join('')}</table>
${heldRows ? `<h2>Held-out accuracy (greedy)</h2><table><tr><th>task</th><th>n</th><th>before RL</th><th>after RL</th></tr>${heldRows}</table>` : ''}
<h2>Training curves</h2>
<div class="grid">${charts.join('\n')}</div>
${skipped.length ? `<h2>Skipped steps</h2><ul>${skipped.map((r) => `<li>step ${r.step}: ${esc(r.skipped!)}</li>`).join('')}</ul>` : ''}
<h2>Configuration</h2><pre>${esc(JSON.stringify(config, null, 2))}</pre>
</body></html>
`;
}

/** Writes RUN_DIR/report.html and returns its path. */
export function writeReport(runDir: string, out = join(runDir, 'report.html')): string {
  if (existsSync(out) && statSync(out).isDirectory()) throw new Error(`report: ${out} is a folder; give a file path`);
  if (['metrics.jsonl', 'config.json', 'summary.json'].some((f) => resolve(runDir, f) === resolve(out))) throw new Error(`report: ${out} is one of the run's own files`);
  const html = renderReport(runDir);
  mkdirSync(dirname(resolve(out)), { recursive: true });
  writeFileSync(out, html);
  return out;
}
