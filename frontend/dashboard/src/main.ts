// The dashboard at /dashboard: one GraphQL document paints every number of the range (KPIs
// against the previous period, the revenue series, goals, three breakdowns, the first page of
// the ledger); subscriptions keep the live feed and the realtime visitor count current.

import "./styles.css";

import type { Client } from "graphql-ws";

import { ApiError, AuthError, type LiveStatus, liveClient, query, subscribe } from "./api";
import { drawRevenueChart } from "./chart";
import { h, icon, replace } from "./dom";
import {
  type Change,
  formatCount,
  formatMoney,
  formatRate,
  pointChange,
  relativeChange,
} from "./format";
import {
  DashboardDocument,
  type DashboardQuery,
  type FilterInput,
  LiveCompletionsDocument,
  LivePaymentsDocument,
  LiveVisitorsDocument,
  type PaymentPageFragment,
  type PaymentRowFragment,
  PaymentsPageDocument,
} from "./generated/graphql";
import {
  DEFAULT_SITE,
  FILTER_DIMENSIONS,
  type Filter,
  type FilterKey,
  filterLabel,
  forgetKey,
  parseState,
  serializeState,
  storeKey,
  takeKey,
  type ViewState,
} from "./state";
import {
  PRESETS,
  type Preset,
  type Range,
  formatDate,
  formatInstant,
  formatTime,
  periodLongLabel,
  resolveRange,
  timeZones,
  wallClock,
} from "./time";

const BREAKDOWN_LIMIT = 10;
const PAYMENTS_PER_PAGE = 10;
const LIVE_FEED_MAX = 30;
// graphql-ws multiplexes on one socket; the server allows 20 subscriptions per connection.
const MAX_GOAL_SUBSCRIPTIONS = 17;
const THEME_STORAGE = "datasaas.dashboard.theme";

const ICONS = {
  logo: "M4 19V9m6 10V5m6 14v-7m4 7H2",
  moon: "M21 12.8A9 9 0 1 1 11.2 3a7 7 0 0 0 9.8 9.8z",
  sun: "M12 4V2m0 20v-2m8-8h2M2 12h2m13.7-5.7 1.4-1.4M4.9 19.1l1.4-1.4m0-11.4L4.9 4.9m14.2 14.2-1.4-1.4M12 16a4 4 0 1 0 0-8 4 4 0 0 0 0 8z",
  key: "M15 7a4 4 0 1 1-3.9 4.9L3 20v-3h3v-3h3l1.1-1.1A4 4 0 0 1 15 7zm1.5 1.5h.01",
  close: "M18 6 6 18M6 6l12 12",
  payment: "M2 7h20v12H2zM2 11h20M6 15h4",
  goal: "M12 22a10 10 0 1 0 0-20 10 10 0 0 0 0 20zm0-6a4 4 0 1 0 0-8 4 4 0 0 0 0 8z",
  refresh: "M21 12a9 9 0 1 1-3-6.7L21 8M21 3v5h-5",
};

const PRESET_LABELS: Record<Preset, string> = {
  today: "Today",
  "7d": "7 days",
  "30d": "30 days",
  "90d": "90 days",
  custom: "Custom",
};

const locale = navigator.language || "en-US";

// ------------------------------------------------------------------------------ state

let state: ViewState = parseState(location.search);
let key: string | null = takeKey(location, history);
let range: Range = currentRange();
let data: DashboardQuery | null = null;
let currency = "USD";
let inflight: AbortController | null = null;
let removeChart: (() => void) | null = null;
let paymentsPage: PaymentPageFragment | null = null;
let paymentCursors: Array<string | null> = [null];
let firstPaint = true;
let live: { signature: string; client: Client; stop: Array<() => void> } | null = null;
let pendingLiveEvents = 0;

function currentRange(): Range {
  const custom =
    state.preset === "custom" && state.from && state.to ? { from: state.from, to: state.to } : undefined;
  return resolveRange(state.preset, state.timeZone, new Date(), custom);
}

function filterInputs(): FilterInput[] {
  return state.filters.map((filter) => ({
    dimension: FILTER_DIMENSIONS[filter.key].dimension,
    operator: "IS",
    values: [filter.value],
  }));
}

function setState(next: Partial<ViewState>, { push = true } = {}): void {
  state = { ...state, ...next };
  const url = `${location.pathname}${serializeState(state)}`;
  if (push) history.pushState(null, "", url);
  else history.replaceState(null, "", url);
  void load();
}

// ------------------------------------------------------------------------------ the shell

const root = document.getElementById("dashboard") ?? document.body.appendChild(h("div"));
const liveStatus = h("span", { class: "live-status", "data-status": "connecting" }, "Connecting…");
const realtimeCount = h("strong", { id: "realtime-visitors" }, "–");
const realtimeBadge = h(
  "p",
  { class: "realtime", title: "Visitors with any activity in the last 90 seconds" },
  h("span", { class: "pulse", "aria-hidden": "true" }),
  realtimeCount,
  h("span", { class: "realtime-label" }, " current visitors"),
);
const presetGroup = h("div", { class: "segmented", role: "group", "aria-label": "Date range" });
const customForm = h("form", { class: "custom-range", hidden: true, "aria-label": "Custom range" });
const zoneSelect = h("select", { id: "timezone", "aria-describedby": "range-caption" });
const themeButton = h("button", { type: "button", class: "icon-button", id: "theme" });
const keyButton = h(
  "button",
  { type: "button", class: "icon-button", id: "change-key", "aria-label": "Change API key" },
  icon(ICONS.key),
);
const chips = h("div", { class: "chips", id: "filters", "aria-label": "Active filters" });
const caption = h("p", { id: "range-caption", class: "range-caption" });
const main = h("main", { id: "main", tabindex: "-1" });
const message = h("div", { id: "message" });

function buildShell(): void {
  document.title = `${state.site} · DataSaaS`;
  for (const preset of PRESETS) {
    presetGroup.appendChild(
      h(
        "button",
        {
          type: "button",
          "data-preset": preset,
          onclick: () => choosePreset(preset),
        },
        PRESET_LABELS[preset],
      ),
    );
  }
  const from = h("input", { type: "date", name: "from", required: true, "aria-label": "From" });
  const to = h("input", { type: "date", name: "to", required: true, "aria-label": "To" });
  replace(
    customForm,
    h("label", {}, h("span", { class: "visually-hidden" }, "From "), from),
    h("span", { "aria-hidden": "true" }, "–"),
    h("label", {}, h("span", { class: "visually-hidden" }, "To "), to),
    h("button", { type: "submit", class: "button" }, "Apply"),
  );
  customForm.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!from.value || !to.value) return;
    const [a, b] = from.value <= to.value ? [from.value, to.value] : [to.value, from.value];
    setState({ preset: "custom", from: a, to: b });
  });
  for (const zone of timeZones(state.timeZone)) {
    zoneSelect.appendChild(h("option", { value: zone }, zone.replaceAll("_", " ")));
  }
  zoneSelect.addEventListener("change", () => setState({ timeZone: zoneSelect.value }));
  themeButton.addEventListener("click", () => {
    const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
    try {
      localStorage.setItem(THEME_STORAGE, next);
    } catch {
      // Not kept: the choice lasts for this page.
    }
    applyTheme(next);
    if (data) drawChart(data);
  });
  keyButton.addEventListener("click", () => showKeyForm(null));

  replace(
    root,
    h("a", { class: "skip-link", href: "#main" }, "Skip to the numbers"),
    h(
      "header",
      { class: "topbar" },
      h(
        "div",
        { class: "brand" },
        h("span", { class: "logo" }, icon(ICONS.logo, 20)),
        h("span", { class: "brand-name" }, "DataSaaS"),
        h("span", { class: "site-id", id: "site-id" }, state.site),
        realtimeBadge,
      ),
      h(
        "div",
        { class: "controls" },
        presetGroup,
        customForm,
        h(
          "label",
          { class: "zone" },
          h("span", { class: "visually-hidden" }, "Time zone"),
          zoneSelect,
        ),
        themeButton,
        keyButton,
      ),
    ),
    h("div", { class: "subbar" }, chips, caption),
    message,
    main,
  );
}

function applyTheme(theme: "light" | "dark"): void {
  document.documentElement.dataset.theme = theme;
  const next = theme === "dark" ? "light" : "dark";
  themeButton.setAttribute("aria-label", `Switch to the ${next} theme`);
  replace(themeButton, icon(theme === "dark" ? ICONS.sun : ICONS.moon));
}

function initialTheme(): "light" | "dark" {
  try {
    const stored = localStorage.getItem(THEME_STORAGE);
    if (stored === "light" || stored === "dark") return stored;
  } catch {
    // No storage: follow the system.
  }
  return matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

function choosePreset(preset: Preset): void {
  if (preset === "custom") {
    const [from, to] = customForm.querySelectorAll("input");
    if (from && to) {
      from.value = range.start.slice(0, 10);
      to.value = range.end.slice(0, 10);
    }
    customForm.hidden = false;
    markPreset("custom");
    from?.focus();
    return;
  }
  setState({ preset, from: null, to: null });
}

function markPreset(preset: Preset): void {
  for (const button of presetGroup.querySelectorAll("button")) {
    button.setAttribute("aria-pressed", String(button.dataset.preset === preset));
  }
}

function syncControls(): void {
  markPreset(state.preset);
  customForm.hidden = state.preset !== "custom";
  if (state.preset === "custom") {
    const [from, to] = customForm.querySelectorAll("input");
    if (from && to && state.from && state.to) {
      from.value = state.from;
      to.value = state.to;
    }
  }
  zoneSelect.value = state.timeZone;
  replace(document.getElementById("site-id") ?? h("span"), state.site);
  document.title = `${state.site} · DataSaaS`;
  replace(
    chips,
    ...state.filters.map((filter) =>
      h(
        "span",
        { class: "chip", "data-filter": filter.key },
        filterLabel(filter),
        h(
          "button",
          {
            type: "button",
            class: "chip-remove",
            "aria-label": `Remove filter: ${filterLabel(filter)}`,
            onclick: () => removeFilter(filter.key),
          },
          icon(ICONS.close, 14),
        ),
      ),
    ),
  );
  const endDate = range.end.slice(0, 10);
  const sameYear = range.start.slice(0, 4) === endDate.slice(0, 4);
  const span =
    range.days === 1
      ? formatDate(range.start, locale, true)
      : `${formatDate(range.start, locale, !sameYear)} – ${formatDate(endDate, locale, true)}`;
  const previousEnd = range.previousEnd.slice(0, 10);
  const previous =
    range.days === 1
      ? formatDate(range.previousStart, locale)
      : `${formatDate(range.previousStart, locale)} – ${formatDate(previousEnd, locale)}`;
  replace(caption, `${span} · ${state.timeZone} · compared with ${previous}`);
  Object.assign(main.dataset, {
    start: range.start,
    end: range.end,
    previousStart: range.previousStart,
    previousEnd: range.previousEnd,
    timezone: state.timeZone,
    granularity: range.granularity,
  });
}

function addFilter(key: FilterKey, value: string | null): void {
  const filters = state.filters.filter((filter) => filter.key !== key);
  filters.push({ key, value });
  setState({ filters });
  main.focus();
}

function removeFilter(key: FilterKey): void {
  setState({ filters: state.filters.filter((filter) => filter.key !== key) });
}

// ------------------------------------------------------------------------------ loading

async function load(): Promise<void> {
  range = currentRange();
  syncControls();
  if (!key) {
    showKeyForm(null);
    return;
  }
  inflight?.abort();
  const controller = new AbortController();
  inflight = controller;
  document.body.dataset.state = "loading";
  main.setAttribute("aria-busy", "true");
  try {
    const result = await query(
      key,
      DashboardDocument,
      {
        site: state.site,
        start: range.start,
        end: range.end,
        previousStart: range.previousStart,
        previousEnd: range.previousEnd,
        timezone: state.timeZone,
        filters: filterInputs(),
        granularity: range.granularity,
        breakdownLimit: BREAKDOWN_LIMIT,
        paymentsPerPage: PAYMENTS_PER_PAGE,
      },
      controller.signal,
    );
    if (controller.signal.aborted) return;
    data = result;
    currency = result.current.currency;
    paymentsPage = result.payments;
    paymentCursors = [null];
    pendingLiveEvents = 0;
    replace(message);
    replace(realtimeCount, formatCount(result.realtime.visitors, locale));
    render(result);
    main.removeAttribute("aria-busy");
    document.body.dataset.state = "ready";
    if (firstPaint) {
      firstPaint = false;
      performance.mark("dashboard-ready");
    }
    startLive(result.goals.map((goal) => goal.name));
  } catch (error) {
    if (controller.signal.aborted) return;
    main.removeAttribute("aria-busy");
    showError(error);
  }
}

function showError(error: unknown): void {
  if (error instanceof AuthError) {
    stopLive();
    const text =
      error.status === 401
        ? "This API key was not accepted: it is unknown, mistyped or has been revoked. Enter a valid read key."
        : `This API key does not give access to the site ${state.site}. Check the site id or use a key of that site.`;
    showKeyForm({ title: error.status === 401 ? "Key not accepted" : "No access to this site", text, detail: error.message });
    document.body.dataset.state = `error-${error.status}`;
    return;
  }
  const text = error instanceof ApiError ? error.message : "Something went wrong while loading the numbers.";
  replace(
    message,
    h(
      "div",
      { class: "banner", role: "alert" },
      h("p", {}, h("strong", {}, "The numbers could not be loaded. "), text),
      h("button", { type: "button", class: "button", onclick: () => void load() }, "Try again"),
    ),
  );
  document.body.dataset.state = "error";
}

function showKeyForm(problem: { title: string; text: string; detail: string } | null): void {
  inflight?.abort();
  removeChart?.();
  removeChart = null;
  const site = h("input", {
    id: "key-site",
    name: "site",
    value: state.site || DEFAULT_SITE,
    required: true,
    pattern: "ds_[a-z0-9_]+",
    autocomplete: "off",
    spellcheck: "false",
  });
  const secret = h("input", {
    id: "key-secret",
    name: "key",
    type: "password",
    required: true,
    autocomplete: "off",
    placeholder: "ds_live_…",
    spellcheck: "false",
  });
  const form = h(
    "form",
    { class: "card key-card", id: "key-form", "aria-labelledby": "key-title" },
    h("h1", { id: "key-title" }, problem ? problem.title : "Open your dashboard"),
    problem
      ? h(
          "div",
          { class: "auth-error", role: "alert" },
          h("p", {}, problem.text),
          h("p", { class: "muted small" }, `The server said: ${problem.detail}`),
        )
      : h(
          "p",
          { class: "muted" },
          "Enter the site id and an API key. The key stays in this browser tab (sessionStorage) and is sent only to this server.",
        ),
    h("label", { for: "key-site" }, "Site id"),
    site,
    h("label", { for: "key-secret" }, "API key (read or read & write)"),
    secret,
    h("button", { type: "submit", class: "button primary" }, "Open dashboard"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const entered = secret.value.trim();
    if (!entered) return;
    key = entered;
    storeKey(entered);
    setState({ site: site.value.trim() || DEFAULT_SITE });
  });
  if (problem) forgetKey();
  replace(message);
  replace(main, form);
  document.body.dataset.state = problem ? document.body.dataset.state ?? "key" : "key";
  (problem ? secret : key ? secret : site.value ? secret : site).focus();
}

// ------------------------------------------------------------------------------ rendering

function render(result: DashboardQuery): void {
  removeChart?.();
  removeChart = null;
  const chartBox = h("div", { class: "chart-box", "aria-hidden": "true" });
  replace(
    main,
    renderKpis(result),
    h(
      "section",
      { class: "card chart-card", "aria-labelledby": "chart-title" },
      h(
        "div",
        { class: "card-head" },
        h("h2", { id: "chart-title" }, "Revenue"),
        h(
          "p",
          { class: "legend", "aria-hidden": "true" },
          h("span", { class: "swatch new" }),
          "New revenue",
          h("span", { class: "swatch refund" }),
          "Refunds",
        ),
      ),
      h(
        "figure",
        { class: "chart", "aria-labelledby": "chart-summary" },
        chartBox,
        h("figcaption", { id: "chart-summary", class: "visually-hidden" }, chartSummary(result)),
      ),
      renderSeriesTable(result),
    ),
    h(
      "div",
      { class: "grid two" },
      renderGoals(result),
      renderLiveCard(),
    ),
    h(
      "div",
      { class: "grid three" },
      renderBreakdown("source", "Top sources", result.bySource),
      renderBreakdown("country", "Countries", result.byCountry),
      renderBreakdown("device_type", "Devices", result.byDevice),
    ),
    renderPayments(),
  );
  drawChart(result, chartBox);
}

function drawChart(result: DashboardQuery, box?: HTMLElement): void {
  const container = box ?? main.querySelector<HTMLElement>(".chart-box");
  if (!container) return;
  removeChart?.();
  replace(container);
  removeChart = drawRevenueChart(container, {
    points: result.series,
    granularity: range.granularity,
    currency,
    locale,
  });
}

function changeBadge(change: Change, invert = false): HTMLElement {
  const good = invert ? "down" : "up";
  const tone = change.direction === "flat" ? "flat" : change.direction === "new" || change.direction === good ? "good" : "bad";
  const arrow = change.direction === "up" ? "↑ " : change.direction === "down" ? "↓ " : "";
  return h(
    "span",
    { class: `kpi-change ${tone}`, title: change.label },
    h("span", { "aria-hidden": "true" }, arrow),
    h("span", { class: "change-text" }, change.text),
    h("span", { class: "visually-hidden" }, " compared with the previous period"),
  );
}

function renderKpis(result: DashboardQuery): HTMLElement {
  const { current, previous } = result;
  const tile = (id: string, label: string, value: string, change: Change, previousText: string): HTMLElement =>
    h(
      "div",
      { class: "kpi", "data-kpi": id },
      h("h2", { class: "kpi-label", id: `kpi-${id}` }, label),
      h("p", { class: "kpi-value", "aria-describedby": `kpi-${id}` }, value),
      h("p", { class: "kpi-foot" }, changeBadge(change), h("span", { class: "kpi-previous" }, `from ${previousText}`)),
    );
  return h(
    "section",
    { class: "kpis", "aria-label": "Key numbers" },
    tile(
      "visitors",
      "Visitors",
      formatCount(current.visitors, locale),
      relativeChange(current.visitors, previous.visitors, locale),
      formatCount(previous.visitors, locale),
    ),
    tile(
      "total-revenue",
      "Total revenue",
      formatMoney(current.totalRevenue, currency, locale),
      relativeChange(Number(current.totalRevenue), Number(previous.totalRevenue), locale),
      formatMoney(previous.totalRevenue, currency, locale),
    ),
    tile(
      "mrr",
      "MRR",
      formatMoney(current.mrr, currency, locale),
      relativeChange(Number(current.mrr), Number(previous.mrr), locale),
      formatMoney(previous.mrr, currency, locale),
    ),
    tile(
      "conversion",
      "Revenue conversion",
      formatRate(current.conversionRate, locale),
      pointChange(current.conversionRate, previous.conversionRate, locale),
      formatRate(previous.conversionRate, locale),
    ),
  );
}

function chartSummary(result: DashboardQuery): string {
  const unit = { HOUR: "hour", DAY: "day", WEEK: "week", MONTH: "month" }[range.granularity];
  return (
    `Revenue per ${unit}, ${result.series.length} bars: new revenue ${formatMoney(result.current.newRevenue, currency, locale)}, ` +
    `refunds ${formatMoney(result.current.refundRevenue, currency, locale)}. The same numbers are in the table below.`
  );
}

function renderSeriesTable(result: DashboardQuery): HTMLElement {
  return h(
    "details",
    { class: "series-table" },
    h("summary", {}, "Show the numbers as a table"),
    h(
      "div",
      { class: "table-scroll" },
      h(
        "table",
        {},
        h("caption", { class: "visually-hidden" }, "Revenue per period"),
        h(
          "thead",
          {},
          h("tr", {}, h("th", { scope: "col" }, "Period"), h("th", { scope: "col", class: "num" }, "New revenue"), h("th", { scope: "col", class: "num" }, "Refunds")),
        ),
        h(
          "tbody",
          {},
          ...result.series.map((point) =>
            h(
              "tr",
              {},
              h("th", { scope: "row" }, periodLongLabel(point.period, range.granularity, locale)),
              h("td", { class: "num" }, formatMoney(point.newRevenue, currency, locale)),
              h("td", { class: "num" }, formatMoney(point.refundRevenue, currency, locale)),
            ),
          ),
        ),
      ),
    ),
  );
}

function renderGoals(result: DashboardQuery): HTMLElement {
  const top = Math.max(1, ...result.goals.map((goal) => goal.uniqueVisitors));
  return h(
    "section",
    { class: "card", "aria-labelledby": "goals-title" },
    h("div", { class: "card-head" }, h("h2", { id: "goals-title" }, "Goals")),
    result.goals.length === 0
      ? h("p", { class: "empty" }, "No goal has been recorded yet.")
      : h(
          "table",
          { class: "bars", id: "goals" },
          h("caption", { class: "visually-hidden" }, "Goals: unique visitors, completions and conversion rate"),
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              h("th", { scope: "col" }, "Goal"),
              h("th", { scope: "col", class: "num" }, "Uniques"),
              h("th", { scope: "col", class: "num" }, "Completions"),
              h("th", { scope: "col", class: "num", title: "Conversion rate" }, "Conv."),
            ),
          ),
          h(
            "tbody",
            {},
            ...result.goals.map((goal) => {
              const row = h(
                "tr",
                { "data-goal": goal.name },
                h("th", { scope: "row", class: "label" }, h("span", { class: "bar-text" }, goal.name)),
                h("td", { class: "num" }, formatCount(goal.uniqueVisitors, locale)),
                h("td", { class: "num" }, formatCount(goal.completionCount, locale)),
                h("td", { class: "num" }, formatRate(goal.conversionRate, locale)),
              );
              row.style.setProperty("--share", `${(100 * goal.uniqueVisitors) / top}%`);
              return row;
            }),
          ),
        ),
  );
}

type BreakdownRows = DashboardQuery["bySource"];

function renderBreakdown(key: FilterKey, title: string, rows: BreakdownRows): HTMLElement {
  const dimension = FILTER_DIMENSIONS[key];
  const active = state.filters.find((filter) => filter.key === key);
  const top = Math.max(0.01, ...rows.map((row) => Number(row.totalRevenue)));
  const id = `breakdown-${key}`;
  return h(
    "section",
    { class: "card", "aria-labelledby": `${id}-title` },
    h(
      "div",
      { class: "card-head" },
      h("h2", { id: `${id}-title` }, title),
      h("p", { class: "muted small" }, "by revenue"),
    ),
    rows.length === 0
      ? h("p", { class: "empty" }, "No visitors in this range.")
      : h(
          "table",
          { class: "bars breakdown", id, "data-dimension": key },
          h(
            "caption",
            { class: "visually-hidden" },
            `${title}: visitors, revenue and conversion. Choose a row to filter the page by it.`,
          ),
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              h("th", { scope: "col" }, dimension.title),
              h("th", { scope: "col", class: "num" }, "Visitors"),
              h("th", { scope: "col", class: "num" }, "Revenue"),
              h("th", { scope: "col", class: "num", title: "Conversion rate" }, "Conv."),
            ),
          ),
          h(
            "tbody",
            {},
            ...rows.map((row) => {
              const label = row.value ?? dimension.none;
              const isActive = active !== undefined && active.value === row.value;
              const tr = h(
                "tr",
                {
                  "data-value": row.value ?? "",
                  "data-none": row.value === null ? "true" : null,
                  class: isActive ? "active" : null,
                },
                h(
                  "th",
                  { scope: "row", class: "label" },
                  h(
                    "button",
                    {
                      type: "button",
                      class: "row-button bar-text",
                      "aria-pressed": String(isActive),
                      "aria-label": `Filter by ${dimension.title.toLowerCase()}: ${label}`,
                      onclick: () => addFilter(key, row.value),
                    },
                    row.value === null ? h("em", {}, label) : label,
                  ),
                ),
                h("td", { class: "num" }, formatCount(row.visitors, locale)),
                h("td", { class: "num" }, formatMoney(row.totalRevenue, currency, locale)),
                h("td", { class: "num" }, formatRate(row.conversionRate, locale)),
              );
              const share = Math.max(0, Number(row.totalRevenue)) / top;
              tr.style.setProperty("--share", `${100 * share}%`);
              return tr;
            }),
          ),
        ),
    rows.length >= BREAKDOWN_LIMIT
      ? h("p", { class: "muted small foot" }, `The top ${BREAKDOWN_LIMIT} by revenue.`)
      : null,
  );
}

// ------------------------------------------------------------------------------ payments

const PAYMENT_TYPES: Record<PaymentRowFragment["paymentType"], string> = {
  ONE_TIME: "One-time",
  RECURRING: "Recurring",
  REFUND: "Refund",
};

function paymentTypeLabel(payment: PaymentRowFragment): string {
  if (payment.paymentType !== "RECURRING" || !payment.billingInterval) return PAYMENT_TYPES[payment.paymentType];
  const count = payment.billingIntervalCount ?? 1;
  const unit = payment.billingInterval.toLowerCase();
  return count === 1 ? `Recurring · ${unit}ly`.replace("dayly", "daily") : `Recurring · every ${count} ${unit}s`;
}

function signedAmount(payment: PaymentRowFragment, value: string, code: string): string {
  const text = formatMoney(value, code, locale);
  return payment.paymentType === "REFUND" ? `−${text}` : text;
}

function renderPayments(): HTMLElement {
  const section = h("section", { class: "card payments-card", id: "payments", "aria-labelledby": "payments-title" });
  fillPayments(section);
  return section;
}

function fillPayments(section: HTMLElement): void {
  const page = paymentsPage;
  const index = paymentCursors.length - 1;
  const rows = page?.edges.map((edge) => edge.node) ?? [];
  const first = index * PAYMENTS_PER_PAGE + 1;
  const count = page?.totalCount ?? 0;
  const pager = h(
    "div",
    { class: "pager" },
    h("span", { class: "muted small", "aria-live": "polite", id: "payments-range" },
      count === 0 ? "No payments" : `${formatCount(first, locale)}–${formatCount(first + rows.length - 1, locale)} of ${formatCount(count, locale)}`),
    h("button", { type: "button", class: "button", disabled: index === 0, onclick: () => void pagePayments(-1) }, "Newer"),
    h("button", { type: "button", class: "button", disabled: !page?.pageInfo.hasNextPage, onclick: () => void pagePayments(1) }, "Older"),
  );
  replace(
    section,
    h("div", { class: "card-head" }, h("h2", { id: "payments-title" }, "Recent payments"), pager),
    rows.length === 0
      ? h("p", { class: "empty" }, "No payments in this range.")
      : h(
          "div",
          { class: "table-scroll" },
          h(
            "table",
            { class: "ledger" },
            h("caption", { class: "visually-hidden" }, "Payments, newest first"),
            h(
              "thead",
              {},
              h(
                "tr",
                {},
                h("th", { scope: "col" }, "Time"),
                h("th", { scope: "col" }, "Type"),
                h("th", { scope: "col" }, "Product"),
                h("th", { scope: "col" }, "Customer"),
                h("th", { scope: "col" }, "Source"),
                h("th", { scope: "col" }, "Country"),
                h("th", { scope: "col", class: "num" }, "Amount"),
              ),
            ),
            h(
              "tbody",
              {},
              ...rows.map((payment) =>
                h(
                  "tr",
                  { "data-transaction": payment.transactionId, class: payment.paymentType === "REFUND" ? "refund" : null },
                  h("td", { class: "nowrap" }, h("time", { datetime: payment.paidAt }, formatInstant(payment.paidAt, state.timeZone, locale))),
                  h("td", {}, h("span", { class: `tag ${payment.paymentType.toLowerCase()}` }, paymentTypeLabel(payment))),
                  h("td", {}, payment.productName ?? "–"),
                  h("td", { class: "mono", title: payment.visitorId }, shortId(payment.visitorId)),
                  h("td", {}, payment.source ?? h("em", { class: "muted" }, "Direct")),
                  h("td", {}, payment.country ?? "–"),
                  h(
                    "td",
                    { class: "num nowrap" },
                    signedAmount(payment, payment.reportingAmount, currency),
                    payment.currency !== currency
                      ? h("span", { class: "muted small block" }, signedAmount(payment, payment.amount, payment.currency))
                      : null,
                  ),
                ),
              ),
            ),
          ),
        ),
  );
}

function shortId(id: string): string {
  return id.length > 14 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id;
}

async function pagePayments(direction: 1 | -1): Promise<void> {
  if (!key || !paymentsPage) return;
  const cursors = [...paymentCursors];
  if (direction === 1) {
    if (!paymentsPage.pageInfo.endCursor) return;
    cursors.push(paymentsPage.pageInfo.endCursor);
  } else {
    if (cursors.length <= 1) return;
    cursors.pop();
  }
  const section = document.getElementById("payments");
  section?.setAttribute("aria-busy", "true");
  try {
    const result = await query(key, PaymentsPageDocument, {
      site: state.site,
      start: range.start,
      end: range.end,
      timezone: state.timeZone,
      filters: filterInputs(),
      first: PAYMENTS_PER_PAGE,
      after: cursors.at(-1) ?? null,
    });
    paymentCursors = cursors;
    paymentsPage = result.payments;
    if (section) fillPayments(section);
  } catch (error) {
    showError(error);
  } finally {
    section?.removeAttribute("aria-busy");
  }
}

// ------------------------------------------------------------------------------ live

const feed = h("ol", { class: "feed", id: "live-feed", "aria-live": "polite", "aria-relevant": "additions" });
const feedEmpty = h("p", { class: "empty", id: "live-empty" }, "Waiting for goal completions and payments…");
const refreshButton = h(
  "button",
  { type: "button", class: "button refresh", hidden: true, onclick: () => void load() },
  icon(ICONS.refresh, 14),
  " Update the numbers",
);

function renderLiveCard(): HTMLElement {
  feedEmpty.hidden = feed.childElementCount > 0;
  refreshButton.hidden = pendingLiveEvents === 0;
  return h(
    "section",
    { class: "card live-card", "aria-labelledby": "live-title" },
    h("div", { class: "card-head" }, h("h2", { id: "live-title" }, "Live"), liveStatus),
    feedEmpty,
    feed,
    refreshButton,
  );
}

function setLiveStatus(status: LiveStatus, reason?: string): void {
  liveStatus.dataset.status = status;
  const text = {
    connecting: "Connecting…",
    live: "Live",
    reconnecting: "Reconnecting…",
    closed: reason ? `Live updates stopped: ${reason}` : "Live updates stopped",
  }[status];
  replace(liveStatus, text);
}

function feedItem(kind: "payment" | "refund" | "goal", title: string, detail: string, at: string, id: string): void {
  const item = h(
    "li",
    { class: `feed-item ${kind}`, "data-kind": kind, "data-id": id },
    h("span", { class: "feed-icon" }, icon(kind === "goal" ? ICONS.goal : ICONS.payment, 16)),
    h("span", { class: "feed-body" }, h("strong", {}, title), h("span", { class: "muted small" }, detail)),
    h("time", { datetime: at, class: "muted small" }, formatTime(at, state.timeZone)),
  );
  feed.prepend(item);
  while (feed.childElementCount > LIVE_FEED_MAX) feed.lastElementChild?.remove();
  feedEmpty.hidden = true;
  pendingLiveEvents += 1;
  refreshButton.hidden = false;
}

const detailOf = (...parts: Array<string | null | undefined>): string =>
  parts.filter((part): part is string => !!part).join(" · ");

function startLive(goals: string[]): void {
  if (!key) return;
  const named = goals.length <= MAX_GOAL_SUBSCRIPTIONS;
  const signature = JSON.stringify([key, state.site, named ? [...goals].sort() : null]);
  if (live?.signature === signature) return;
  stopLive();
  const client = liveClient(key, setLiveStatus);
  const stop: Array<() => void> = [];
  const failed = (message: string): void => setLiveStatus("closed", message);
  stop.push(
    subscribe(client, LiveVisitorsDocument, { site: state.site }, (result) => {
      replace(realtimeCount, formatCount(result.realtimeVisitors.visitors, locale));
    }, failed),
  );
  stop.push(
    subscribe(client, LivePaymentsDocument, { site: state.site }, ({ paymentCreated: payment }) => {
      const refund = payment.paymentType === "REFUND";
      feedItem(
        refund ? "refund" : "payment",
        `${signedAmount(payment, payment.reportingAmount, currency)} ${refund ? "refund" : (payment.productName ?? "payment")}`,
        detailOf(paymentTypeLabel(payment), payment.source ?? "Direct", payment.country),
        payment.paidAt,
        payment.transactionId,
      );
    }, failed),
  );
  for (const goal of named ? goals : [null]) {
    stop.push(
      subscribe(client, LiveCompletionsDocument, { site: state.site, goal }, ({ completionCreated: completion }) => {
        feedItem(
          "goal",
          goal ?? "Goal completed",
          detailOf(completion.source ?? "Direct", completion.country, completion.deviceType),
          completion.completedAt,
          `${goal ?? ""}:${completion.visitorId}:${completion.completedAt}`,
        );
      }, failed),
    );
  }
  live = { signature, client, stop };
}

function stopLive(): void {
  if (!live) return;
  for (const stop of live.stop) stop();
  void live.client.dispose();
  live = null;
}

// ------------------------------------------------------------------------------ start

applyTheme(initialTheme());
buildShell();
history.replaceState(null, "", `${location.pathname}${serializeState(state)}`);
window.addEventListener("popstate", () => {
  state = parseState(location.search);
  void load();
});
// A range ending now moves on: refresh the wall clock on return after a long absence.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && state.preset !== "custom" && data) {
    const { date } = wallClock(new Date(), state.timeZone);
    if (!range.end.startsWith(date)) void load();
  }
});
void load();
