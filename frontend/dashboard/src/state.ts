// The view's state lives in the URL query, so a view can be shared: site, range, time zone and
// filters. The key never does: it comes from the `#key=` fragment (never sent to the server,
// removed from the address bar at once) or the form, and is kept in sessionStorage.

import type { Dimension } from "./generated/graphql";
import { browserTimeZone, isDate, PRESETS, type Preset } from "./time";

/** The breakdowns a click can filter by, with their URL parameter and labels. */
export const FILTER_DIMENSIONS = {
  source: { dimension: "SOURCE", title: "Source", none: "Direct / none" },
  country: { dimension: "COUNTRY", title: "Country", none: "Unknown" },
  device_type: { dimension: "DEVICE_TYPE", title: "Device", none: "Unknown" },
} as const satisfies Record<string, { dimension: Dimension; title: string; none: string }>;
export type FilterKey = keyof typeof FILTER_DIMENSIONS;
const FILTER_KEYS = Object.keys(FILTER_DIMENSIONS) as FilterKey[];

export interface Filter {
  key: FilterKey;
  /** `null` is "no value" (direct traffic, unknown country). */
  value: string | null;
}

export interface ViewState {
  site: string;
  preset: Preset;
  from: string | null;
  to: string | null;
  timeZone: string;
  filters: Filter[];
}

export const DEFAULT_SITE = "ds_demo";
const KEY_STORAGE = "datasaas.dashboard.key";

/** The state in `search` (a URL query), with defaults for what it leaves out. */
export function parseState(search: string): ViewState {
  const params = new URLSearchParams(search);
  const preset = params.get("range") as Preset | null;
  const from = params.get("from");
  const to = params.get("to");
  const custom = preset === "custom" && isDate(from) && isDate(to) && from <= to;
  const filters: Filter[] = [];
  for (const key of FILTER_KEYS) {
    if (params.has(key)) {
      const value = params.get(key) ?? "";
      filters.push({ key, value: value === "" ? null : value });
    }
  }
  return {
    site: params.get("site") || DEFAULT_SITE,
    preset: custom ? "custom" : preset && PRESETS.includes(preset) && preset !== "custom" ? preset : "30d",
    from: custom ? from : null,
    to: custom ? to : null,
    timeZone: validTimeZone(params.get("tz")) ?? browserTimeZone(),
    filters,
  };
}

/** The URL query of a state (an empty filter value is "no value"). */
export function serializeState(state: ViewState): string {
  const params = new URLSearchParams();
  params.set("site", state.site);
  params.set("range", state.preset);
  if (state.preset === "custom" && state.from && state.to) {
    params.set("from", state.from);
    params.set("to", state.to);
  }
  params.set("tz", state.timeZone);
  for (const filter of state.filters) params.set(filter.key, filter.value ?? "");
  return `?${params.toString()}`;
}

/** `zone` when the browser knows it as an IANA time zone. */
export function validTimeZone(zone: string | null): string | null {
  if (!zone) return null;
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return zone;
  } catch {
    return null;
  }
}

/** The key from the `#key=` fragment (then wiped from the address bar) or this tab's storage. */
export function takeKey(location: Location, history: History): string | null {
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ""));
  const fromFragment = fragment.get("key")?.trim();
  if (fromFragment) {
    storeKey(fromFragment);
    history.replaceState(history.state, "", `${location.pathname}${location.search}`);
    return fromFragment;
  }
  try {
    return sessionStorage.getItem(KEY_STORAGE);
  } catch {
    return null;
  }
}

/** Keep the key for this tab only. */
export function storeKey(key: string): void {
  try {
    sessionStorage.setItem(KEY_STORAGE, key);
  } catch {
    // Storage refused (private mode): the key lives until the page is closed.
  }
}

/** Forget the key. */
export function forgetKey(): void {
  try {
    sessionStorage.removeItem(KEY_STORAGE);
  } catch {
    // Nothing stored.
  }
}

/** How a filter reads in a chip: "Source is google.com". */
export function filterLabel(filter: Filter): string {
  const dimension = FILTER_DIMENSIONS[filter.key];
  return `${dimension.title} is ${filter.value ?? dimension.none}`;
}
