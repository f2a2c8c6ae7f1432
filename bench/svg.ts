/**
 * Charts as plain SVG strings (no browser, no library): horizontal bar panels
 * stacked in one image. `chart()` is generic; `benchChart()` lays out the
 * suite's W1 and W2 throughput and W4 latency percentiles.
 */
import { med, type SuiteResult } from './report.js';
import { IDEAL_PER_THREAD } from './workloads.js';

export interface BarRow {
  label: string;
  /** Picks the colour: ringpool, the ring (ceiling) and the peers differ. */
  system: string;
  /** One value per series; NaN draws nothing. */
  values: number[];
}

export interface Panel {
  title: string;
  /** Series names (legend shown when more than one). */
  series: string[];
  rows: BarRow[];
  format: (v: number) => string;
  /** Log scale (for latencies spanning decades). */
  log?: boolean;
  /** Vertical reference lines, e.g. the ideal or a target. */
  refs?: Array<{ value: number; label: string }>;
}

const WIDTH = 980;
const LABEL_W = 360;
const PLOT_X = LABEL_W + 10;
const PLOT_W = 500;
const BAR_H = 11;
const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';

const COLOURS: Record<string, string> = { ringpool: '#e8590c', 'ringpool (Redis)': '#f08c00', ring: '#7048e8' };
const PEER = '#1c7ed6';
const SHADES = [1, 0.6, 0.32];

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** About five round tick values from 0 to at least `max`. */
function linearTicks(max: number): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let v = 0; v < max + step * 0.999; v += step) ticks.push(v);
  return ticks;
}

function scale(panel: Panel): { x: (v: number) => number; ticks: number[] } {
  const vals = panel.rows.flatMap((r) => r.values).filter((v) => Number.isFinite(v) && (!panel.log || v > 0));
  const refs = (panel.refs ?? []).map((r) => r.value);
  if (panel.log) {
    const lo = 10 ** Math.floor(Math.log10(Math.min(...vals, ...refs, 10)));
    const hi = 10 ** Math.ceil(Math.log10(Math.max(...vals, ...refs, lo * 10)));
    const ticks: number[] = [];
    for (let v = lo; v <= hi * 1.0001; v *= 10) ticks.push(v);
    return { x: (v) => PLOT_X + (PLOT_W * Math.log10(Math.max(v, lo) / lo)) / Math.log10(hi / lo), ticks };
  }
  const ticks = linearTicks(Math.max(...vals, ...refs, 0));
  const hi = ticks[ticks.length - 1]!;
  return { x: (v) => PLOT_X + (PLOT_W * v) / hi, ticks };
}

/** One panel at vertical offset `y`; returns its SVG and height. */
function panelSvg(panel: Panel, y: number): { svg: string; height: number } {
  const parts: string[] = [];
  const n = panel.series.length;
  const rowH = n * BAR_H + 8;
  let cy = y + 22;
  parts.push(`<text x="12" y="${y + 16}" font-size="15" font-weight="600" ${FONT}>${escapeXml(panel.title)}</text>`);
  if (n > 1) {
    let lx = PLOT_X;
    panel.series.forEach((s, i) => {
      parts.push(`<rect x="${lx}" y="${cy}" width="12" height="10" fill="#495057" fill-opacity="${SHADES[i] ?? 0.2}"/>`);
      parts.push(`<text x="${lx + 16}" y="${cy + 9}" font-size="11" ${FONT}>${escapeXml(s)}</text>`);
      lx += 24 + s.length * 7;
    });
    cy += 18;
  }
  const { x, ticks } = scale(panel);
  const top = cy;
  const bottom = top + panel.rows.length * rowH;
  for (const t of ticks) {
    const tx = x(t).toFixed(1);
    parts.push(`<line x1="${tx}" y1="${top}" x2="${tx}" y2="${bottom}" stroke="#dee2e6" stroke-width="1"/>`);
    parts.push(`<text x="${tx}" y="${bottom + 13}" font-size="10" text-anchor="middle" fill="#868e96" ${FONT}>${escapeXml(panel.format(t))}</text>`);
  }
  panel.rows.forEach((row, i) => {
    const ry = top + i * rowH + 4;
    const colour = COLOURS[row.system] ?? PEER;
    const weight = row.system === 'ringpool' ? ' font-weight="600"' : '';
    parts.push(`<text x="${LABEL_W}" y="${ry + (n * BAR_H) / 2 + 4}" font-size="11" text-anchor="end"${weight} ${FONT}>${escapeXml(row.label)}</text>`);
    row.values.forEach((v, s) => {
      const by = ry + s * BAR_H;
      if (!Number.isFinite(v)) {
        parts.push(`<text x="${PLOT_X + 4}" y="${by + 9}" font-size="10" fill="#868e96" ${FONT}>n/a</text>`);
        return;
      }
      const w = Math.max(1, x(v) - PLOT_X);
      parts.push(`<rect x="${PLOT_X}" y="${by}" width="${w.toFixed(1)}" height="${BAR_H - 2}" fill="${colour}" fill-opacity="${SHADES[s] ?? 0.2}"/>`);
      parts.push(`<text x="${(PLOT_X + w + 4).toFixed(1)}" y="${by + 8.5}" font-size="10" fill="#343a40" ${FONT}>${escapeXml(panel.format(v))}</text>`);
    });
  });
  for (const ref of panel.refs ?? []) {
    const rx = x(ref.value).toFixed(1);
    parts.push(`<line x1="${rx}" y1="${top - 4}" x2="${rx}" y2="${bottom}" stroke="#c92a2a" stroke-width="1" stroke-dasharray="4 3"/>`);
    parts.push(`<text x="${rx}" y="${top - 6}" font-size="10" text-anchor="middle" fill="#c92a2a" ${FONT}>${escapeXml(ref.label)}</text>`);
  }
  return { svg: parts.join('\n'), height: bottom + 30 - y };
}

/** Panels stacked under a title, a subtitle and (if given) a warning line in red. */
export function chart(title: string, subtitle: string, panels: Panel[], warning?: string): string {
  const body: string[] = [];
  let y = warning ? 70 : 52;
  for (const p of panels) {
    if (p.rows.length === 0) continue;
    const { svg, height } = panelSvg(p, y);
    body.push(svg);
    y += height + 8;
  }
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${y}" viewBox="0 0 ${WIDTH} ${y}">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="12" y="22" font-size="18" font-weight="700" ${FONT}>${escapeXml(title)}</text>`,
    `<text x="12" y="40" font-size="11" fill="#495057" ${FONT}>${escapeXml(subtitle)}</text>`,
    ...(warning ? [`<text x="12" y="60" font-size="14" font-weight="700" fill="#c92a2a" ${FONT}>${escapeXml(warning)}</text>`] : []),
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

const fmtInt = (v: number): string => Math.round(v).toLocaleString('en-US');
const fmtUs = (v: number): string => (v < 10 ? v.toFixed(1) : fmtInt(v));

/** The suite's chart: W1 and W2 throughput, W4 latency percentiles at both rates. */
export function benchChart(r: SuiteResult): string {
  const m = r.machine;
  const subtitle = `${m.cpu}, ${m.cores} cores, Node ${m.node}; ${r.startedAt.slice(0, 10)}; median of ${r.runs} run${r.runs === 1 ? '' : 's'}`;
  const warning = r.quick ? 'PLACEHOLDER: a --quick smoke run (tiny counts); these figures mean nothing. The full run replaces it.' : undefined;
  const rows = (w: 'w1' | 'w2' | 'w4', values: (subject: string) => number[]): BarRow[] =>
    (r.workloads[w] ?? []).filter((row) => row.median !== null).map((row) => ({ label: row.label, system: row.system, values: values(row.subject) }));
  const num = (x: number | undefined): number => x ?? NaN;
  const rate = (w: string): string => Number(r.options[w]).toLocaleString('en-US');
  return chart('ringpool benchmark (npm run bench)', subtitle, [
    {
      title: 'W1 tiny messages (~100-byte JSON, no-op handler): msgs/s, higher is better',
      series: ['msgs/s'],
      rows: rows('w1', (s) => [num(med(r, 'w1', s, 'msgsPerSec'))]),
      format: fmtInt,
    },
    {
      title: `W2 CPU-bound (${r.calibration?.targetMicros ?? 50} µs handler): % of ideal (threads x ${IDEAL_PER_THREAD.toLocaleString('en-US')}/s)`,
      series: ['% of ideal'],
      rows: rows('w2', (s) => [num(med(r, 'w2', s, 'shareOfIdeal')) * 100]),
      format: (v) => `${v.toFixed(0)} %`,
      refs: [{ value: 95, label: 'target 95 %' }],
    },
    {
      title: `W4 end-to-end latency at ${rate('w4Rate')} msg/s: µs (log scale), lower is better`,
      series: ['p50', 'p99', 'p99.9'],
      rows: rows('w4', (s) => ['fixed.p50Us', 'fixed.p99Us', 'fixed.p999Us'].map((f) => num(med(r, 'w4', s, f)))),
      format: fmtUs,
      log: true,
    },
    {
      title: `W4 end-to-end latency at ${Math.round(Number(r.options.w4Load) * 100)} % of each system's W1 throughput (rate in brackets): µs (log scale)`,
      series: ['p50', 'p99', 'p99.9'],
      rows: rows('w4', (s) => ['load.p50Us', 'load.p99Us', 'load.p999Us'].map((f) => num(med(r, 'w4', s, f)))).map((row, i) => {
        const rate = r.workloads.w4?.filter((x) => x.median !== null)[i]?.median?.['load.rate'];
        return rate === undefined ? row : { ...row, label: `${row.label} (${fmtInt(rate)}/s)` };
      }),
      format: fmtUs,
      log: true,
    },
  ], warning);
}
