/**
 * What each setting allows, as plain rules: each edition's configuration (in code, or from the
 * environment) refuses a value with the rule's words.
 */

/** Why `url` cannot be a token endpoint, or undefined when it can. */
export const tokenUrlProblem = (url: string): string | undefined => {
  if (!URL.canParse(url)) return "it is not a URL"
  const { protocol } = new URL(url)
  return protocol === "http:" || protocol === "https:" ? undefined : `its scheme is "${protocol}", not http: or https:`
}

/** What a duration setting allows: more than zero, or zero too (a window, a debounce); always finite. */
export type DurationRule = "positive" | "nonNegative"

export const durationAllowed: Record<DurationRule, string> = {
  positive: "a finite duration more than zero (e.g. 30 seconds)",
  nonNegative: "a finite duration of zero or more (e.g. 5 minutes)"
}

/** Whether a duration of `millis` milliseconds (`Infinity` for an infinite one) follows `rule`. */
export const durationFits = (millis: number, rule: DurationRule): boolean =>
  Number.isFinite(millis) && (rule === "nonNegative" ? millis >= 0 : millis > 0)

export const portsAllowed = "a comma-separated list of ports from 0 to 65535, e.g. 1455,1457 (0 = any free port)"

export const isPort = (port: number) => Number.isInteger(port) && port >= 0 && port < 65536

/** The ports of `text` (`1455,1457`), or undefined when an item is not a port: an empty item is not port 0. */
export const parsePorts = (text: string): ReadonlyArray<number> | undefined => {
  const items = text.split(",").map((item) => item.trim())
  return items.every((item) => /^\d{1,5}$/.test(item) && isPort(Number(item))) ? items.map(Number) : undefined
}

/** Whether `url` is a PostgreSQL connection URL. */
export const isDatabaseUrl = (url: string): boolean => /^postgres(ql)?:\/\//.test(url)

// The longest name made of the prefix is `<prefix>_credentials` (12 more characters) and PostgreSQL
// cuts names at 63: 40 leaves room for tables added later.
const tablePrefixPattern = /^[a-z_][a-z0-9_]{0,39}$/
export const tablePrefixAllowed =
  "a lower-case PostgreSQL name: a letter or _, then letters, digits or _, at most 40 characters (e.g. effect_auth)"

/** Why `prefix` cannot prefix the library's tables, or undefined when it can. */
export const tablePrefixProblem = (prefix: string): string | undefined =>
  tablePrefixPattern.test(prefix) ? undefined : `Expected ${tablePrefixAllowed} but received "${prefix}"`

export const poolSizeAllowed = "a whole number of connections from 1 to 100"

/** The pool size `text` sets, or undefined when it is not a whole number from 1 to 100. */
export const parsePoolSize = (text: string): number | undefined => {
  const size = Number(text.trim())
  return text.trim() !== "" && Number.isInteger(size) && size >= 1 && size <= 100 ? size : undefined
}
