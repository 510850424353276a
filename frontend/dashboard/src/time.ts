// Ranges in the viewer's chosen time zone, as the API reads them (§5): a date-only `start` is
// that day's local midnight, a date-only `end` the whole day, a datetime without offset is
// local wall time. Everything here is pure and works on calendar strings, so no arithmetic
// ever happens on the browser's own time zone.

import type { Granularity } from "./generated/graphql";

export type Preset = "today" | "7d" | "30d" | "90d" | "custom";
export const PRESETS: readonly Preset[] = ["today", "7d", "30d", "90d", "custom"];
export const PRESET_DAYS: Record<Exclude<Preset, "custom">, number> = {
  today: 1,
  "7d": 7,
  "30d": 30,
  "90d": 90,
};

/** A resolved range, in the strings sent to the API. */
export interface Range {
  start: string;
  end: string;
  previousStart: string;
  previousEnd: string;
  /** Calendar days the range touches (1 for today). */
  days: number;
  granularity: Granularity;
}

interface WallClock {
  date: string; // YYYY-MM-DD
  time: string; // HH:MM:SS
}

const pad = (n: number, width = 2): string => String(n).padStart(width, "0");

const wallFormatters = new Map<string, Intl.DateTimeFormat>();

/** The wall clock of `instant` in `timeZone`. */
export function wallClock(instant: Date, timeZone: string): WallClock {
  let format = wallFormatters.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    });
    wallFormatters.set(timeZone, format);
  }
  const parts: Record<string, string> = {};
  for (const part of format.formatToParts(instant)) {
    parts[part.type] = part.value;
  }
  return {
    date: `${pad(Number(parts.year), 4)}-${parts.month}-${parts.day}`,
    time: `${parts.hour}:${parts.minute}:${parts.second}`,
  };
}

function toUtcDays(date: string): number {
  const [y, m, d] = date.split("-").map(Number) as [number, number, number];
  return Date.UTC(y, m - 1, d) / 86_400_000;
}

function fromUtcDays(days: number): string {
  const at = new Date(days * 86_400_000);
  return `${pad(at.getUTCFullYear(), 4)}-${pad(at.getUTCMonth() + 1)}-${pad(at.getUTCDate())}`;
}

/** `date` moved by `days` calendar days. */
export function addDays(date: string, days: number): string {
  return fromUtcDays(toUtcDays(date) + days);
}

/** Calendar days from `from` to `to`, both included. */
export function daysInclusive(from: string, to: string): number {
  return toUtcDays(to) - toUtcDays(from) + 1;
}

export const isDate = (value: string | null | undefined): value is string =>
  !!value && /^\d{4}-\d{2}-\d{2}$/.test(value) && !Number.isNaN(toUtcDays(value)) &&
  fromUtcDays(toUtcDays(value)) === value;

/** The bucket size for a range of `days` calendar days: bars stay countable and readable. */
export function granularityFor(days: number): Granularity {
  if (days <= 2) return "HOUR";
  if (days <= 93) return "DAY";
  if (days <= 731) return "WEEK";
  return "MONTH";
}

/**
 * The range of a preset (ending now, compared with the same stretch of time just before it) or
 * of custom whole days (compared with as many whole days before them).
 */
export function resolveRange(
  preset: Preset,
  timeZone: string,
  now: Date,
  custom?: { from: string; to: string },
): Range {
  if (preset === "custom" && custom) {
    const days = daysInclusive(custom.from, custom.to);
    return {
      start: custom.from,
      end: custom.to,
      previousStart: addDays(custom.from, -days),
      previousEnd: addDays(custom.from, -1),
      days,
      granularity: granularityFor(days),
    };
  }
  const days = PRESET_DAYS[preset === "custom" ? "30d" : preset];
  // The API takes whole seconds: round up, so what happened in this very second is in range.
  const { date: today, time } = wallClock(new Date(Math.ceil(now.getTime() / 1000) * 1000), timeZone);
  const start = addDays(today, -(days - 1));
  return {
    start,
    end: `${today}T${time}`,
    previousStart: addDays(start, -days),
    previousEnd: `${addDays(today, -days)}T${time}`,
    days,
    granularity: granularityFor(days),
  };
}

const monthDay = new Map<string, Intl.DateTimeFormat>();
function dateFormat(locale: string, options: Intl.DateTimeFormatOptions): Intl.DateTimeFormat {
  const key = `${locale}|${JSON.stringify(options)}`;
  let format = monthDay.get(key);
  if (!format) {
    format = new Intl.DateTimeFormat(locale, { timeZone: "UTC", ...options });
    monthDay.set(key, format);
  }
  return format;
}

/** A calendar date for people ("Dec 2"), with the year when asked. */
export function formatDate(date: string, locale: string, withYear = false): string {
  const at = new Date(toUtcDays(date) * 86_400_000);
  return dateFormat(locale, {
    month: "short",
    day: "numeric",
    ...(withYear ? { year: "numeric" } : {}),
  }).format(at);
}

/** A series bucket's label: the API's `period` is already local time, so it is read as is. */
export function periodLabel(period: string, granularity: Granularity, locale: string): string {
  const date = period.slice(0, 10);
  switch (granularity) {
    case "HOUR":
      return period.slice(11, 16);
    case "MONTH":
      return dateFormat(locale, { month: "short", year: "numeric" }).format(
        new Date(toUtcDays(date) * 86_400_000),
      );
    case "WEEK":
      return `Week of ${formatDate(date, locale)}`;
    default:
      return formatDate(date, locale);
  }
}

/** The long label of a bucket (table fallback, tooltip): hours keep their day and offset. */
export function periodLongLabel(period: string, granularity: Granularity, locale: string): string {
  if (granularity === "HOUR") {
    const offset = period.slice(19);
    return `${formatDate(period.slice(0, 10), locale)} ${period.slice(11, 16)} (${
      offset === "Z" ? "UTC" : `UTC${offset}`
    })`;
  }
  return periodLabel(period, granularity, locale);
}

/** An instant (the API's `DateTime`) as wall time in `timeZone`, e.g. "Dec 2, 14:05". */
export function formatInstant(iso: string, timeZone: string, locale: string): string {
  return new Intl.DateTimeFormat(locale, {
    timeZone,
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  }).format(new Date(iso));
}

/** Wall-clock time of day of an instant in `timeZone`, e.g. "14:05:09". */
export function formatTime(iso: string, timeZone: string): string {
  return wallClock(new Date(iso), timeZone).time;
}

/** Every IANA zone the browser knows, UTC first. */
export function timeZones(current: string): string[] {
  const zones = new Set<string>(["UTC"]);
  const supported = (Intl as { supportedValuesOf?: (key: string) => string[] }).supportedValuesOf;
  for (const zone of supported ? supported("timeZone") : []) zones.add(zone);
  zones.add(current);
  return [...zones];
}

/** The browser's own time zone. */
export function browserTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}
