// uPlot in a Preact component: build(el, width) returns a uPlot; rebuilt when `deps` change,
// resized with its container.
import uPlot from 'uplot';
import { useEffect, useRef } from 'preact/hooks';

export function Chart({ build, deps, height = 220, label }) {
  const box = useRef();
  const plot = useRef();
  useEffect(() => {
    const el = box.current;
    plot.current = build(el, Math.max(200, el.clientWidth), height);
    const ro = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(200, el.clientWidth), height }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, deps);
  return <div class="chart" ref={box} role="img" aria-label={label} />;
}

const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
export const color = (status) => css(`--${status}`);
export const axisStyle = () => ({ stroke: css('--muted'), grid: { stroke: css('--grid'), width: 1 }, ticks: { stroke: css('--grid') } });

// A histogram of X-Ray's ResponseTimeHistogram [{Value (s), Count}] as bars over log-spaced bins.
export function histogramBuilder(histogram) {
  return (el, width, height) => {
    const pts = [...(histogram || [])].filter((h) => h.Count > 0).sort((a, b) => a.Value - b.Value);
    const bins = 30;
    const lo = Math.max(1e-4, pts.length ? pts[0].Value : 1e-3), hi = Math.max(lo * 1.01, pts.length ? pts[pts.length - 1].Value : 1);
    const step = Math.log(hi / lo) / bins || 1;
    const xs = Array.from({ length: bins + 1 }, (_, i) => lo * Math.exp(i * step) * 1000);
    const ys = new Array(bins + 1).fill(0);
    for (const p of pts) ys[Math.min(bins, Math.floor(Math.log(p.Value / lo) / step))] += p.Count;
    return new uPlot({
      width, height,
      scales: { x: { time: false, distr: 3 } },
      legend: { show: false },
      axes: [{ ...axisStyle(), label: 'response time (ms)' }, { ...axisStyle(), label: 'requests' }],
      series: [{}, { label: 'requests', fill: css('--accent-soft'), stroke: css('--accent'), paths: uPlot.paths.bars({ size: [0.9, 40] }) }],
    }, [xs, ys], el);
  };
}
