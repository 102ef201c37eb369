// The report as an SVG: the completion CDF (share of honest hosts done by each simulated second)
// and the origin's egress over time, one above the other on the same time axis. Plain SVG text,
// no dependencies.
import type { SimReport } from './report.ts'

const W = 720
const PANEL = 220
const M = { left: 64, right: 20, top: 36, gap: 56, bottom: 44 }

function esc (s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

function niceStep (span: number, ticks: number): number {
  const raw = span / ticks
  const p = 10 ** Math.floor(Math.log10(raw))
  const m = raw / p
  return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p
}

function fmt (x: number): string {
  if (x === 0) return '0'
  if (Math.abs(x) >= 100) return x.toFixed(0)
  if (Math.abs(x) >= 1) return String(Number(x.toFixed(2)))
  return String(Number(x.toPrecision(2)))
}

export function renderPlot (r: SimReport): string {
  const times = r.completionTimes
  const series = r.originSeries
  const tMax = Math.max(times[times.length - 1] ?? 0, series.bytes.length * series.bucketSeconds, r.idealSeconds) * 1.05 || 1
  const plotW = W - M.left - M.right
  const H = M.top + PANEL + M.gap + PANEL + M.bottom
  const x = (t: number): number => M.left + (t / tMax) * plotW
  const out: string[] = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`)
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`)
  out.push(`<text x="${M.left}" y="20" font-size="13" font-weight="bold">${esc(`caswarm sim: ${r.scenario}, ${r.hosts} hosts (${r.maliciousHosts} malicious), ${(r.uniqueBytes / 2 ** 20).toFixed(0)} MiB, seed ${r.seed}`)}</text>`)
  const step = niceStep(tMax, 8)
  const axisX = (y0: number): void => {
    for (let t = 0; t <= tMax + 1e-12; t += step) {
      out.push(`<line x1="${x(t).toFixed(1)}" y1="${y0}" x2="${x(t).toFixed(1)}" y2="${y0 - PANEL}" stroke="#eee"/>`)
      out.push(`<text x="${x(t).toFixed(1)}" y="${y0 + 14}" text-anchor="middle">${fmt(t)}</text>`)
    }
    out.push(`<line x1="${M.left}" y1="${y0}" x2="${M.left + plotW}" y2="${y0}" stroke="black"/>`)
    out.push(`<line x1="${M.left}" y1="${y0}" x2="${M.left}" y2="${y0 - PANEL}" stroke="black"/>`)
  }
  const ideal = (y0: number): void => {
    out.push(`<line x1="${x(r.idealSeconds).toFixed(1)}" y1="${y0}" x2="${x(r.idealSeconds).toFixed(1)}" y2="${y0 - PANEL}" stroke="#c33" stroke-dasharray="4 3"/>`)
    out.push(`<text x="${(x(r.idealSeconds) + 4).toFixed(1)}" y="${y0 - PANEL + 12}" fill="#c33">one host alone (ideal)</text>`)
  }

  // panel 1: completion CDF
  const y1 = M.top + PANEL
  axisX(y1)
  for (let f = 0; f <= 1.0001; f += 0.25) {
    const y = y1 - f * PANEL
    out.push(`<text x="${M.left - 6}" y="${(y + 4).toFixed(1)}" text-anchor="end">${Math.round(f * 100)}%</text>`)
    out.push(`<line x1="${M.left}" y1="${y.toFixed(1)}" x2="${M.left + plotW}" y2="${y.toFixed(1)}" stroke="#eee"/>`)
  }
  const n = r.honestHosts
  if (times.length > 0) {
    const pts: string[] = [`${x(0).toFixed(1)},${y1}`]
    const stride = Math.max(1, Math.floor(times.length / 2000))
    for (let i = 0; i < times.length; i += stride) {
      const yPrev = y1 - (i / n) * PANEL
      const yNext = y1 - ((i + 1) / n) * PANEL
      pts.push(`${x(times[i]!).toFixed(1)},${yPrev.toFixed(1)}`, `${x(times[i]!).toFixed(1)},${yNext.toFixed(1)}`)
    }
    const last = times[times.length - 1]!
    pts.push(`${x(last).toFixed(1)},${(y1 - (times.length / n) * PANEL).toFixed(1)}`)
    out.push(`<polyline fill="none" stroke="#1f6feb" stroke-width="2" points="${pts.join(' ')}"/>`)
  }
  ideal(y1)
  out.push(`<text x="${M.left}" y="${M.top - 4}" font-weight="bold">${esc(`hosts done (CDF): ${r.completedHosts}/${r.honestHosts}, p50 ${fmt(r.completion.p50)} s, p99 ${fmt(r.completion.p99)} s, max ${fmt(r.completion.max)} s`)}</text>`)

  // panel 2: origin egress (MB/s per bucket)
  const y2 = y1 + M.gap + PANEL
  axisX(y2)
  const rates = series.bytes.map(b => b / series.bucketSeconds / 1e6)
  const rMax = Math.max(...rates, 1e-9) * 1.1
  const rStep = niceStep(rMax, 4)
  for (let v = 0; v <= rMax; v += rStep) {
    const y = y2 - (v / rMax) * PANEL
    out.push(`<text x="${M.left - 6}" y="${(y + 4).toFixed(1)}" text-anchor="end">${fmt(v)}</text>`)
    out.push(`<line x1="${M.left}" y1="${y.toFixed(1)}" x2="${M.left + plotW}" y2="${y.toFixed(1)}" stroke="#eee"/>`)
  }
  if (rates.length > 0) {
    const pts: string[] = [`${x(0).toFixed(1)},${y2}`]
    rates.forEach((v, i) => {
      const y = (y2 - (v / rMax) * PANEL).toFixed(1)
      pts.push(`${x(i * series.bucketSeconds).toFixed(1)},${y}`, `${x((i + 1) * series.bucketSeconds).toFixed(1)},${y}`)
    })
    pts.push(`${x(rates.length * series.bucketSeconds).toFixed(1)},${y2}`)
    out.push(`<polyline fill="#f0883e33" stroke="#d4600a" stroke-width="1.5" points="${pts.join(' ')}"/>`)
  }
  ideal(y2)
  out.push(`<text x="${M.left}" y="${y2 - PANEL - 6}" font-weight="bold">${esc(`origin egress, MB/s: ${(r.originBytes / 1e6).toFixed(1)} MB sent for ${(r.uniqueBytes / 1e6).toFixed(1)} MB unique (${r.originRatio}×); peers moved ${(r.peerBytes / 1e6).toFixed(0)} MB`)}</text>`)
  out.push(`<text x="${M.left + plotW / 2}" y="${H - 10}" text-anchor="middle">simulated seconds</text>`)
  out.push('</svg>')
  return out.join('\n') + '\n'
}
