// The revenue chart: new revenue as bars above the axis, refunds below it, one bar per local
// bucket (the API's `period`, shown as it is: it is already local time). uPlot draws on a
// canvas, which screen readers cannot read: the figure is labelled with a summary and a table
// of the same numbers sits beside it.

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

import { formatMoney, formatMoneyCompact } from "./format";
import type { Granularity } from "./generated/graphql";
import { periodLabel, periodLongLabel } from "./time";

export interface SeriesPoint {
  period: string;
  newRevenue: string;
  refundRevenue: string;
}

export interface ChartInput {
  points: SeriesPoint[];
  granularity: Granularity;
  currency: string;
  locale: string;
}

function line(tag: "strong" | "span", text: string): HTMLElement {
  const element = document.createElement(tag);
  element.textContent = text;
  return element;
}

function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

/** A revenue chart in `container`; returns a function that removes it. */
export function drawRevenueChart(container: HTMLElement, input: ChartInput): () => void {
  const { points, granularity, currency, locale } = input;
  const xs = points.map((_, index) => index);
  const news = points.map((point) => Number(point.newRevenue));
  const refunds = points.map((point) => -Number(point.refundRevenue));
  const labels = points.map((point) => periodLabel(point.period, granularity, locale));
  const text = cssVar("--muted");
  const grid = cssVar("--grid");
  const positive = cssVar("--accent");
  const negative = cssVar("--negative");
  const bars = uPlot.paths.bars?.({ size: [0.72, 40], radius: 0.15, align: 0 });

  const tooltip = document.createElement("div");
  tooltip.className = "chart-tooltip";
  tooltip.hidden = true;
  const showTooltip = (u: uPlot): void => {
    const index = u.cursor.idx;
    const point = index === null || index === undefined ? undefined : points[index];
    if (!point || index === null || index === undefined) {
      tooltip.hidden = true;
      return;
    }
    tooltip.replaceChildren(
      line("strong", periodLongLabel(point.period, granularity, locale)),
      line("span", `New revenue ${formatMoney(point.newRevenue, currency, locale)}`),
      line("span", `Refunds ${formatMoney(point.refundRevenue, currency, locale)}`),
    );
    tooltip.hidden = false;
    const x = u.valToPos(index, "x") + u.over.offsetLeft;
    const flip = x > u.over.offsetLeft + u.over.clientWidth * 0.65;
    tooltip.style.left = `${flip ? x - tooltip.offsetWidth - 12 : x + 12}px`;
    tooltip.style.top = `${u.over.offsetTop + 8}px`;
  };

  const options: uPlot.Options = {
    width: Math.max(container.clientWidth, 280),
    height: container.clientWidth < 500 ? 200 : 260,
    padding: [12, 8, 0, 4],
    cursor: { y: false, drag: { x: false, y: false }, points: { show: false } },
    select: { show: false, left: 0, top: 0, width: 0, height: 0 },
    legend: { show: false },
    hooks: { setCursor: [showTooltip] },
    scales: {
      x: { time: false, range: (_u, min, max) => [min - 0.6, max + 0.6] },
      y: {
        range: (_u, min, max) => {
          const top = Math.max(max, 1) * 1.1;
          return [Math.min(min * 1.1, 0), top];
        },
      },
    },
    axes: [
      {
        stroke: text,
        grid: { show: false },
        ticks: { show: false },
        space: 56,
        values: (_u, splits) =>
          splits.map((split) => (Number.isInteger(split) ? (labels[split] ?? "") : "")),
        font: "12px system-ui, sans-serif",
      },
      {
        stroke: text,
        grid: { stroke: grid, width: 1 },
        ticks: { show: false },
        size: 64,
        values: (_u, splits) => splits.map((split) => formatMoneyCompact(split, currency, locale)),
        font: "12px system-ui, sans-serif",
      },
    ],
    series: [
      {
        label: "Period",
      },
      {
        label: "New revenue",
        fill: positive,
        stroke: positive,
        width: 0,
        paths: bars,
        points: { show: false },
      },
      {
        label: "Refunds",
        fill: negative,
        stroke: negative,
        width: 0,
        paths: bars,
        points: { show: false },
      },
    ],
  };
  const plot = new uPlot(options, [xs, news, refunds], container);
  container.appendChild(tooltip);
  const resize = new ResizeObserver(() => {
    const width = Math.max(container.clientWidth, 280);
    if (Math.abs(width - plot.width) > 1) {
      plot.setSize({ width, height: width < 500 ? 200 : 260 });
    }
  });
  resize.observe(container);
  return () => {
    resize.disconnect();
    plot.destroy();
  };
}
