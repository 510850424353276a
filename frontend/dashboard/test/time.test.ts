import assert from "node:assert/strict";
import { test } from "node:test";

import {
  addDays,
  daysInclusive,
  granularityFor,
  isDate,
  periodLabel,
  periodLongLabel,
  resolveRange,
  wallClock,
} from "../src/time";

test("calendar arithmetic crosses months, years and leap days", () => {
  assert.equal(addDays("2026-12-31", 1), "2027-01-01");
  assert.equal(addDays("2024-03-01", -1), "2024-02-29");
  assert.equal(addDays("2026-03-29", -29), "2026-02-28");
  assert.equal(daysInclusive("2026-11-03", "2026-12-02"), 30);
  assert.equal(daysInclusive("2026-12-02", "2026-12-02"), 1);
  assert.ok(isDate("2024-02-29"));
  assert.ok(!isDate("2026-02-29"));
  assert.ok(!isDate("2026-2-1"));
});

test("the wall clock is the chosen zone's, not the machine's", () => {
  const instant = new Date("2026-12-02T03:30:00Z");
  assert.deepEqual(wallClock(instant, "UTC"), { date: "2026-12-02", time: "03:30:00" });
  assert.deepEqual(wallClock(instant, "America/New_York"), { date: "2026-12-01", time: "22:30:00" });
  assert.deepEqual(wallClock(instant, "Asia/Kolkata"), { date: "2026-12-02", time: "09:00:00" });
  // Midnight is 00, never 24.
  assert.equal(wallClock(new Date("2026-12-02T05:00:00Z"), "America/New_York").time, "00:00:00");
});

test("30 days end now and start at local midnight 29 days before, against the 30 before", () => {
  const now = new Date("2026-12-02T03:30:00Z"); // Dec 1, 22:30 in New York
  assert.deepEqual(resolveRange("30d", "America/New_York", now), {
    start: "2026-11-02",
    end: "2026-12-01T22:30:00",
    previousStart: "2026-10-03",
    previousEnd: "2026-11-01T22:30:00",
    days: 30,
    granularity: "DAY",
  });
});

test("a range ending now includes the current second", () => {
  const range = resolveRange("7d", "UTC", new Date("2026-12-02T20:38:09.250Z"));
  assert.equal(range.end, "2026-12-02T20:38:10");
});

test("today compares with yesterday up to the same time, hourly", () => {
  const now = new Date("2026-03-08T15:10:05Z"); // the spring DST day in New York
  const range = resolveRange("today", "America/New_York", now);
  assert.deepEqual(range, {
    start: "2026-03-08",
    end: "2026-03-08T11:10:05",
    previousStart: "2026-03-07",
    previousEnd: "2026-03-07T11:10:05",
    days: 1,
    granularity: "HOUR",
  });
});

test("a custom range is whole days, compared with as many whole days before", () => {
  const range = resolveRange("custom", "UTC", new Date(), { from: "2026-11-10", to: "2026-11-16" });
  assert.deepEqual(range, {
    start: "2026-11-10",
    end: "2026-11-16",
    previousStart: "2026-11-03",
    previousEnd: "2026-11-09",
    days: 7,
    granularity: "DAY",
  });
});

test("granularity keeps the bars countable", () => {
  assert.equal(granularityFor(1), "HOUR");
  assert.equal(granularityFor(2), "HOUR");
  assert.equal(granularityFor(3), "DAY");
  assert.equal(granularityFor(93), "DAY");
  assert.equal(granularityFor(94), "WEEK");
  assert.equal(granularityFor(731), "WEEK");
  assert.equal(granularityFor(732), "MONTH");
});

test("bucket labels read the API's local period as it is", () => {
  assert.equal(periodLabel("2026-11-03", "DAY", "en-US"), "Nov 3");
  assert.equal(periodLabel("2026-11-02", "WEEK", "en-US"), "Week of Nov 2");
  assert.equal(periodLabel("2026-11-01", "MONTH", "en-US"), "Nov 2026");
  assert.equal(periodLabel("2026-11-01T01:00:00-04:00", "HOUR", "en-US"), "01:00");
  // The repeated autumn hour is told apart by its offset.
  assert.equal(periodLongLabel("2026-11-01T01:00:00-04:00", "HOUR", "en-US"), "Nov 1 01:00 (UTC-04:00)");
  assert.equal(periodLongLabel("2026-11-01T01:00:00-05:00", "HOUR", "en-US"), "Nov 1 01:00 (UTC-05:00)");
  assert.equal(periodLongLabel("2026-11-01T01:00:00Z", "HOUR", "en-US"), "Nov 1 01:00 (UTC)");
});
