// Time charts over uPlot (static/vendor, built from npm by web/build.mjs):
// axes with times and units, a legend, sized to their box. Each chart
// records the tick labels it drew in data-xticks and data-yticks so tests
// (and people reading the DOM) can see what the axes say.
"use strict";

const twoDigits = (n) => String(n).padStart(2, "0");

// timeLabel formats a Unix time for an axis spanning span seconds.
function timeLabel(sec, span) {
  const d = new Date(sec * 1000);
  const hm = twoDigits(d.getHours()) + ":" + twoDigits(d.getMinutes());
  if (span <= 15 * 60) return hm + ":" + twoDigits(d.getSeconds());
  if (span <= 36 * 3600) return hm;
  return (d.getMonth() + 1) + "/" + d.getDate() + " " + hm;
}

// unitLabel formats an axis value in its unit.
function unitLabel(v, unit) {
  if (unit === "$/h" || unit === "$") return "$" + (Math.abs(v) < 1 && v !== 0 ? v.toFixed(3) : v.toFixed(2));
  if (unit === "%") return Math.round(v) + "%";
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

// TimeChart draws series against time. spec: {title, axes: {y: {label,
// unit}, y2?: {label, unit}}, series: [{label, color, axis: "y"|"y2",
// dash?}]}.
class TimeChart {
  constructor(box, spec) {
    this.box = box;
    this.spec = spec;
    this.height = spec.height || 220;
    this.data = [[], ...spec.series.map(() => [])];
    this.plot = null;
    new ResizeObserver(() => this.fit()).observe(box);
  }

  options(width) {
    const spec = this.spec;
    const record = (attr, labels) => { this.box.dataset[attr] = labels.join("|"); return labels; };
    const axes = [
      {
        label: "time",
        values: (u, splits) => {
          const span = u.scales.x.max - u.scales.x.min;
          return record("xticks", splits.map((s) => timeLabel(s, span)));
        },
      },
      {
        label: spec.axes.y.label,
        scale: "y",
        size: 56,
        values: (u, splits) => record("yticks", splits.map((v) => unitLabel(v, spec.axes.y.unit))),
      },
    ];
    const scales = { x: { time: true, range: (u, min, max) => this.range || [min, max] }, y: { range: (u, min, max) => [0, Math.max(spec.axes.y.min || 1, max * 1.1)] } };
    if (spec.axes.y2) {
      axes.push({
        label: spec.axes.y2.label,
        scale: "y2",
        side: 1,
        size: 64,
        grid: { show: false },
        values: (u, splits) => record("y2ticks", splits.map((v) => unitLabel(v, spec.axes.y2.unit))),
      });
      scales.y2 = { range: (u, min, max) => [0, Math.max(spec.axes.y2.min || 0.01, max * 1.1)] };
    }
    const unitOf = (s) => (s.axis === "y2" ? spec.axes.y2.unit : spec.axes.y.unit);
    return {
      width,
      height: this.height,
      title: spec.title,
      scales,
      axes,
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      series: [
        { label: "time", value: (u, v) => (v == null ? "–" : new Date(v * 1000).toLocaleString()) },
        ...spec.series.map((s) => ({
          label: s.label,
          scale: s.axis || "y",
          stroke: s.color,
          width: 2,
          dash: s.dash,
          fill: s.fill,
          spanGaps: false,
          value: (u, v) => (v == null ? "–" : unitLabel(v, unitOf(s))),
        })),
      ],
    };
  }

  fit() {
    const width = Math.floor(this.box.clientWidth);
    if (width < 50) return; // hidden: drawn when shown
    if (!this.plot) {
      this.plot = new uPlot(this.options(width), this.data, this.box);
    } else if (this.plot.width !== width) {
      this.plot.setSize({ width, height: this.height });
    }
  }

  // set draws times and one column of values per series over the range
  // [from, to] in Unix seconds (the data's own span when not given).
  set(times, columns, from, to) {
    this.range = from !== undefined ? [from, to] : null;
    this.data = [times, ...columns];
    this.box.dataset.points = String(times.length);
    if (from !== undefined) this.box.dataset.span = String(to - from);
    if (this.plot) this.plot.setData(this.data);
    else this.fit();
  }
}

// rangeSeconds is what a range picker's value ("15m", "1h", "6h", "24h")
// spans.
function rangeSeconds(v) {
  const n = parseFloat(v);
  return v.endsWith("m") ? n * 60 : v.endsWith("h") ? n * 3600 : n;
}
