/**
 * The configuration's defaults and its check, in plain terms (milliseconds, `| undefined`, plain
 * strings): each edition turns its `Duration` and `Option` values into these at its edge, and
 * builds its own `ConfigError` from the problem `settingsProblem` finds.
 */
import { formatMillis } from "./messages.js"
import { codexClientId, codexIssuer, codexTokenUrl } from "./providers.js"
import {
  durationAllowed,
  durationFits,
  type DurationRule,
  isDatabaseUrl,
  isPort,
  portsAllowed,
  tablePrefixAllowed,
  tablePrefixProblem,
  tokenUrlProblem
} from "./rules.js"

/** The defaults of the configuration (durations in milliseconds). */
export const defaults = {
  codexTokenUrl,
  codexClientId,
  codexIssuer,
  bodyFormat: "json",
  originator: "codex_cli_rs",
  refreshTimeoutMillis: 30_000,
  signInTimeoutMillis: 600_000,
  credentialKey: "default",
  tablePrefix: "effect_auth",
  poolSize: 4
} as const

/** The folder of `auth.json` in the home folder `home`: `<home>/.codex`. */
export const codexHomeIn = (home: string): string => `${home}/.codex`

/** The folder of `auth.json` given `given` (an empty name is no folder: as in Codex, it is the default). */
export const codexHomeOf = (given: string | undefined, home: string): string =>
  given !== undefined && given !== "" ? given : codexHomeIn(home)

/** The manager's timings, in milliseconds (each edition's `Settings` holds them as its `Duration`). */
export interface ManagerMillis {
  readonly refreshWindow: number
  readonly minRefreshInterval: number
  readonly staleAfter: number
  readonly backoffBase: number
  readonly backoffCap: number
  readonly maxRetryAfter: number
  readonly refreshTimeout: number
  readonly answerLimit: number
  readonly shutdownWait: number
  readonly shutdownSaveWait: number
  readonly watchDebounce: number
}
export type ManagerDuration = keyof ManagerMillis

const second = 1000
const minute = 60 * second

/**
 * How long a token request stays open for its answer at most (5 minutes): past the refresh timeout
 * callers stop waiting, but an answer that comes later may carry a rotated refresh token.
 */
export const defaultAnswerLimitMillis = 5 * minute

/** The manager's defaults: its timings in milliseconds, and whether OpenAI credentials are required. */
export const defaultManager: ManagerMillis & { readonly requiresOpenaiAuth: boolean } = {
  requiresOpenaiAuth: true,
  refreshWindow: 5 * minute,
  minRefreshInterval: 30 * second,
  staleAfter: 8 * 24 * 60 * minute,
  backoffBase: second,
  backoffCap: 5 * minute,
  maxRetryAfter: 60 * minute,
  watchDebounce: 100,
  refreshTimeout: 30 * second,
  answerLimit: defaultAnswerLimitMillis,
  shutdownWait: 40 * second,
  shutdownSaveWait: 2 * second
}

/** The manager's durations the configuration checks, and what each allows. */
export const managerDurations: ReadonlyArray<readonly [ManagerDuration, DurationRule]> = [
  ["refreshWindow", "nonNegative"],
  // Zero is no guard at all (tests and benchmarks force refreshes with it); below zero is a typo.
  ["minRefreshInterval", "nonNegative"],
  ["staleAfter", "positive"],
  ["backoffBase", "positive"],
  ["backoffCap", "positive"],
  ["maxRetryAfter", "nonNegative"],
  ["shutdownWait", "positive"],
  ["watchDebounce", "nonNegative"]
]

/** What `settingsProblem` checks, in plain terms: durations in milliseconds, absent as undefined. */
export interface PlainSettings {
  readonly refreshTimeoutMillis: number
  readonly manager: Partial<Record<ManagerDuration, number>>
  readonly signInTimeoutMillis: number
  readonly tokenUrl: string
  readonly ports?: ReadonlyArray<number> | undefined
  /** The database's URL (a secret: it is never repeated in a problem) and the tables' prefix. */
  readonly database?: { readonly url: string; readonly tablePrefix: string } | undefined
}

/** A setting that cannot work: where it is, its value as written (none for a secret), what is allowed, the words. */
export interface SettingsProblem {
  readonly path: ReadonlyArray<string>
  readonly received: string | undefined
  readonly allowed: string
  readonly message: string
}

/** A duration of `millis` as Effect writes it ("1m 30s", "0", "-5ms", "Infinity"). */
export const formatDuration = (millis: number): string =>
  millis < 0 ? `-${formatMillis(-millis)}` : formatMillis(millis)

/** The first setting of `settings` that cannot work, in the order the configuration has them; undefined when all can. */
export const settingsProblem = (settings: PlainSettings): SettingsProblem | undefined => {
  const durations: ReadonlyArray<readonly [ReadonlyArray<string>, number | undefined, DurationRule]> = [
    [["refreshTimeout"], settings.refreshTimeoutMillis, "positive"],
    ...managerDurations.map(([name, rule]) => [["manager", name], settings.manager[name], rule] as const),
    [["signIn", "timeout"], settings.signInTimeoutMillis, "positive"]
  ]
  for (const [path, millis, rule] of durations) {
    if (millis !== undefined && !durationFits(millis, rule)) {
      const received = formatDuration(millis)
      const allowed = durationAllowed[rule]
      return { path, received, allowed, message: `Expected ${allowed} but received ${received}` }
    }
  }
  const urlProblem = tokenUrlProblem(settings.tokenUrl)
  if (urlProblem !== undefined) {
    const allowed = "an http:// or https:// URL"
    return {
      path: ["tokenEndpoint", "url"],
      received: settings.tokenUrl,
      allowed,
      message: `Expected ${allowed}, but ${urlProblem}`
    }
  }
  const ports = settings.ports
  if (ports !== undefined && (ports.length === 0 || !ports.every(isPort))) {
    const received = `[${ports.join(", ")}]`
    return {
      path: ["signIn", "ports"],
      received,
      allowed: portsAllowed,
      message: `Expected ${portsAllowed} but received ${received}`
    }
  }
  const database = settings.database
  if (database !== undefined) {
    if (!isDatabaseUrl(database.url)) {
      // The URL holds a password: its value is never repeated.
      return {
        path: ["database", "url"],
        received: undefined,
        allowed: "a postgres:// URL",
        message: "Expected a postgres:// URL"
      }
    }
    const prefixProblem = tablePrefixProblem(database.tablePrefix)
    if (prefixProblem !== undefined) {
      return {
        path: ["database", "tablePrefix"],
        received: `"${database.tablePrefix}"`,
        allowed: tablePrefixAllowed,
        message: prefixProblem
      }
    }
  }
  return undefined
}
