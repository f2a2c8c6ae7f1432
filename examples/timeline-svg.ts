/**
 * A small SVG timeline for the demo: stacked panels sharing one time axis,
 * shaded phase bands, line/step/area series, linear or log y axes. Written as
 * a string, no dependency and no browser.
 */

export interface Series {
  label: string;
  color: string;
  /** [seconds, value]; a non-finite value breaks the line. */
  points: ReadonlyArray<readonly [number, number]>;
  /** Hold each value until the next point (thread counts). */
  step?: boolean;
  /** Fill down to the axis. */
  area?: boolean;
  dashed?: boolean;
  /** Draw against the panel's right-hand axis. */
  right?: boolean;
}

export interface Panel {
  title: string;
  series: Series[];
  /** Log10 y axis (latencies); values <= 0 are skipped. */
  log?: boolean;
  /** Formats a y tick. */
  format?: (v: number) => string;
  /** Formats a right-hand y tick (when a series has `right`). */
  formatRight?: (v: number) => string;
  /** Lowest top of the y axis (so a flat line does not fill the panel). */
  minMax?: number;
  minMaxRight?: number;
  /** Whole-number ticks (counts of threads). */
  integer?: boolean;
}

export interface Band {
  from: number;
  to: number;
  label: string;
  color: string;
}

export interface Timeline {
  title: string;
  subtitle?: string;
  /** Length of the time axis, seconds. */
  seconds: number;
  panels: Panel[];
  bands?: Band[];
  width?: number;
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const r1 = (v: number): string => (Math.round(v * 10) / 10).toString();

/** 1, 2 or 5 times a power of ten, at least v / n. */
function niceStep(span: number, n: number): number {
  const raw = span / n;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

function linearAxis(max: number, integer = false): { top: number; ticks: number[] } {
  const top0 = max > 0 ? max : 1;
  const step = integer ? Math.max(1, Math.round(niceStep(top0, 4))) : niceStep(top0, 4);
  const top = Math.ceil(top0 / step) * step;
  const ticks: number[] = [];
  for (let v = 0; v <= top + step / 2; v += step) ticks.push(v);
  return { top, ticks };
}

export function timelineSvg(t: Timeline): string {
  const W = t.width ?? 960;
  const left = 78;
  const right = t.panels.some((p) => p.series.some((s) => s.right)) ? 64 : 24;
  const top = t.subtitle ? 66 : 48;
  const panelH = 120;
  const gap = 46;
  const H = top + t.panels.length * (panelH + gap) + 10;
  const plotW = W - left - right;
  const secs = Math.max(t.seconds, 1e-3);
  const x = (s: number): number => left + (Math.min(Math.max(s, 0), secs) / secs) * plotW;
  const xStep = niceStep(secs, 10);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${left}" y="24" font-size="16" font-weight="600">${esc(t.title)}</text>`,
  );
  if (t.subtitle) out.push(`<text x="${left}" y="44" fill="#555">${esc(t.subtitle)}</text>`);

  t.panels.forEach((p, i) => {
    const y0 = top + i * (panelH + gap) + 18; // top of the plot area
    const yBase = y0 + panelH;
    const values = (right: boolean): number[] =>
      p.series.filter((s) => !!s.right === right).flatMap((s) => s.points.map((pt) => pt[1]).filter((v) => Number.isFinite(v) && (!p.log || v > 0)));
    // The y scales.
    let yOf: (v: number) => number;
    let ticks: number[];
    const fmt = p.format ?? ((v: number) => String(v));
    if (p.log) {
      const vs = values(false);
      const lo = 10 ** Math.floor(Math.log10(Math.min(...vs, p.minMax ?? Infinity, 1)));
      const hi = 10 ** Math.ceil(Math.log10(Math.max(...vs, p.minMax ?? 0, lo * 10)));
      yOf = (v) => yBase - ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * panelH;
      ticks = [];
      for (let v = lo; v <= hi * 1.0001; v *= 10) ticks.push(v);
    } else {
      const ax = linearAxis(Math.max(...values(false), p.minMax ?? 0), p.integer);
      yOf = (v) => yBase - (v / ax.top) * panelH;
      ticks = ax.ticks;
    }
    const rightAx = linearAxis(Math.max(...values(true), p.minMaxRight ?? 0));
    const yRight = (v: number): number => yBase - (v / rightAx.top) * panelH;

    // Phase bands, grid, axes.
    for (const b of t.bands ?? []) {
      out.push(`<rect x="${r1(x(b.from))}" y="${y0}" width="${r1(Math.max(1, x(b.to) - x(b.from)))}" height="${panelH}" fill="${b.color}" fill-opacity="0.13"/>`);
      if (i === 0) out.push(`<text x="${r1(x(b.from) + 4)}" y="${y0 + 13}" fill="${b.color}" font-size="11">${esc(b.label)}</text>`);
    }
    for (const v of ticks) {
      const yy = r1(yOf(v));
      out.push(`<line x1="${left}" x2="${left + plotW}" y1="${yy}" y2="${yy}" stroke="#e4e4e4"/>`);
      out.push(`<text x="${left - 6}" y="${yy}" dy="4" text-anchor="end" fill="#444">${esc(fmt(v))}</text>`);
    }
    if (p.series.some((s) => s.right)) {
      const fr = p.formatRight ?? ((v: number) => String(v));
      for (const v of rightAx.ticks) out.push(`<text x="${left + plotW + 6}" y="${r1(yRight(v))}" dy="4" fill="#444">${esc(fr(v))}</text>`);
    }
    for (let s = 0; s <= secs + 1e-9; s += xStep) {
      const xx = r1(x(s));
      out.push(`<line x1="${xx}" x2="${xx}" y1="${y0}" y2="${yBase}" stroke="#f0f0f0"/>`);
      out.push(`<text x="${xx}" y="${yBase + 15}" text-anchor="middle" fill="#444">${r1(s)}s</text>`);
    }
    out.push(`<rect x="${left}" y="${y0}" width="${plotW}" height="${panelH}" fill="none" stroke="#999"/>`);

    // Title and legend.
    let lx = left;
    out.push(`<text x="${lx}" y="${y0 - 6}" font-weight="600">${esc(p.title)}</text>`);
    lx += p.title.length * 7 + 16;
    for (const s of p.series) {
      out.push(`<line x1="${lx}" x2="${lx + 18}" y1="${y0 - 10}" y2="${y0 - 10}" stroke="${s.color}" stroke-width="2.5"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/>`);
      out.push(`<text x="${lx + 22}" y="${y0 - 6}" fill="#333">${esc(s.label)}${s.right ? ' (right axis)' : ''}</text>`);
      lx += 22 + (s.label.length + (s.right ? 13 : 0)) * 6.5 + 18;
    }

    // The series: runs of finite points become one path each.
    for (const s of p.series) {
      const ys = s.right ? yRight : yOf;
      const runs: Array<Array<[number, number]>> = [];
      let run: Array<[number, number]> = [];
      for (const [tt, v] of s.points) {
        if (!Number.isFinite(v) || (p.log && !s.right && v <= 0)) {
          if (run.length > 0) runs.push(run);
          run = [];
          continue;
        }
        const px = x(tt);
        const py = Math.min(yBase, Math.max(y0, ys(v)));
        if (s.step && run.length > 0) run.push([px, run[run.length - 1]![1]]);
        run.push([px, py]);
      }
      if (run.length > 0) runs.push(run);
      for (const r of runs) {
        const d = r.map(([px, py], k) => `${k === 0 ? 'M' : 'L'}${r1(px)} ${r1(py)}`).join(' ');
        if (s.area && r.length > 1) {
          out.push(`<path d="${d} L${r1(r[r.length - 1]![0])} ${yBase} L${r1(r[0]![0])} ${yBase} Z" fill="${s.color}" fill-opacity="0.18" stroke="none"/>`);
        }
        if (r.length === 1) out.push(`<circle cx="${r1(r[0]![0])}" cy="${r1(r[0]![1])}" r="2" fill="${s.color}"/>`);
        else out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.8" stroke-linejoin="round"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/>`);
      }
    }
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
