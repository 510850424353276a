import assert from "node:assert/strict";
import { test } from "node:test";

import { formatCount, formatMoney, formatRate, pointChange, relativeChange } from "../src/format";

test("amounts keep the API's decimals, exactly, with the locale's separators", () => {
  assert.equal(formatMoney("24500.00", "USD", "en-US"), "$24,500.00");
  assert.equal(formatMoney("-99.00", "USD", "en-US"), "-$99.00");
  assert.equal(formatMoney("1500", "JPY", "en-US"), "¥1,500");
  assert.equal(formatMoney("12.345", "BHD", "en-US"), "BHD\u00a012.345");
  assert.equal(formatMoney("1234567.89", "EUR", "de-DE"), "1.234.567,89\u00a0€");
  // Beyond a double's 15-16 digits: formatted from the string, not a float.
  assert.equal(formatMoney("90071992547409.93", "USD", "en-US"), "$90,071,992,547,409.93");
});

test("counts and rates", () => {
  assert.equal(formatCount(1991, "en-US"), "1,991");
  assert.equal(formatCount(1991, "de-DE"), "1.991");
  assert.equal(formatRate(0.0397, "en-US"), "3.97%");
  assert.equal(formatRate(1, "en-US"), "100.00%");
  assert.equal(formatRate(0, "en-US"), "0.00%");
});

test("changes against the previous period", () => {
  assert.equal(relativeChange(150, 100, "en-US").text, "+50%");
  assert.equal(relativeChange(50, 100, "en-US").text, "-50%");
  assert.equal(relativeChange(100, 100, "en-US").text, "0%");
  assert.equal(relativeChange(100, 100, "en-US").direction, "flat");
  assert.equal(relativeChange(5, 0, "en-US").text, "new");
  assert.equal(relativeChange(0, 0, "en-US").text, "0%");
  assert.equal(relativeChange(1991, 36, "en-US").text, "+5,431%");
  // Half away from zero on the ratio's shortest decimal, as the browser test's Python side rounds.
  assert.equal(relativeChange(1005, 1000, "en-US").text, "+1%");
  assert.equal(relativeChange(995, 1000, "en-US").text, "-1%");
  assert.equal(relativeChange(1.005, 1, "en-US").text, "0%"); // 0.00499999… as a double
  assert.equal(relativeChange(3, 2, "en-US").direction, "up");
  assert.equal(pointChange(0.0397, 0.0177, "en-US").text, "+2.20 pp");
  assert.equal(pointChange(0.0177, 0.0397, "en-US").text, "-2.20 pp");
  assert.equal(pointChange(0.05, 0.05, "en-US").text, "0.00 pp");
});
