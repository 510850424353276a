// Numbers for people: the viewer's locale for separators, the site's currency with exactly the
// decimals the API sent (the `Decimal` scalar carries the currency's minor units), rates as
// percentages with two decimals (the API rounds them to four decimals of a fraction, so no
// further rounding happens).

const cache = new Map<string, Intl.NumberFormat>();
function numberFormat(locale: string, options: Intl.NumberFormatOptions): Intl.NumberFormat {
  const key = `${locale}|${JSON.stringify(options)}`;
  let format = cache.get(key);
  if (!format) {
    format = new Intl.NumberFormat(locale, options);
    cache.set(key, format);
  }
  return format;
}

/** Decimals of an exact decimal string ("24500.00" → 2). */
export const decimalsOf = (value: string): number => value.split(".")[1]?.length ?? 0;

/** A count with thousands separators. */
export function formatCount(value: number, locale: string): string {
  return numberFormat(locale, { maximumFractionDigits: 0 }).format(value);
}

/** An exact amount in `currency`, with the decimals the API sent, never through a float. */
export function formatMoney(value: string, currency: string, locale: string): string {
  const decimals = decimalsOf(value);
  return numberFormat(locale, {
    style: "currency",
    currency,
    minimumFractionDigits: decimals,
    maximumFractionDigits: decimals,
  }).format(value as Intl.StringNumericLiteral);
}

/** A short amount for chart axes ("$12K"). */
export function formatMoneyCompact(value: number, currency: string, locale: string): string {
  return numberFormat(locale, {
    style: "currency",
    currency,
    notation: "compact",
    maximumFractionDigits: 1,
  }).format(value);
}

/** A rate (a fraction, 4 decimals) as a percentage with two decimals ("1.23%"). */
export function formatRate(value: number, locale: string): string {
  return numberFormat(locale, {
    style: "percent",
    minimumFractionDigits: 2,
    maximumFractionDigits: 2,
  }).format(value);
}

export interface Change {
  text: string;
  direction: "up" | "down" | "flat" | "new";
  label: string;
}

/** Relative change of a count or amount against the previous period ("+12%"). */
export function relativeChange(current: number, previous: number, locale: string): Change {
  if (previous === 0) {
    return current === 0
      ? { text: "0%", direction: "flat", label: "no change" }
      : { text: "new", direction: "new", label: "nothing in the previous period" };
  }
  const ratio = (current - previous) / Math.abs(previous);
  const text = numberFormat(locale, {
    style: "percent",
    maximumFractionDigits: 0,
    signDisplay: "exceptZero",
  }).format(ratio);
  const direction = text.startsWith("+") ? "up" : /^[-−]/.test(text) ? "down" : "flat";
  return { text, direction, label: `${text} compared with the previous period` };
}

/** Change of a rate in percentage points ("+0.35 pp"). */
export function pointChange(current: number, previous: number, locale: string): Change {
  const points = (current - previous) * 100;
  const number = numberFormat(locale, {
    minimumFractionDigits: 2,
    maximumFractionDigits: 2,
    signDisplay: "exceptZero",
  }).format(points);
  const direction = number.startsWith("+") ? "up" : /^[-−]/.test(number) ? "down" : "flat";
  return {
    text: `${number} pp`,
    direction,
    label: `${number} percentage points compared with the previous period`,
  };
}
