/**
 * The configuration read from the environment through Effect's `Config`: every variable of
 * `variables`, each carrying its description, each refused at start with its name, its value and
 * what it allows.
 */
import {
  durationAllowed,
  durationFits,
  type DurationRule,
  isDatabaseUrl,
  parsePoolSize,
  parsePorts,
  poolSizeAllowed,
  portsAllowed,
  tablePrefixProblem,
  tokenUrlProblem
} from "@effect-auth-manager/core/rules"
import { codexHomeIn } from "@effect-auth-manager/core/settings"
import { type Variable, variables } from "@effect-auth-manager/core/variables"
import { Config, Duration, Effect, LogLevel, Option, Redacted, Schema } from "effect"
import { homedir } from "node:os"
import type { Options } from "../Options.js"
import type { Settings } from "../Settings.js"
import {
  clientAuths,
  codexClientId,
  codexIssuer,
  codexTokenUrl,
  credentialsStoreModes,
  defaultBodyFormat,
  defaultCredentialKey,
  defaultOriginator,
  defaultPoolSize,
  defaultRefreshTimeout,
  defaultSignInTimeout,
  defaultTablePrefix
} from "./defaults.js"
import { refuse } from "./refuse.js"

// Each variable is read through a schema that carries what `variables` says of it.
const text = (name: Variable) => Config.schema(Schema.String.annotate({ description: variables[name] }), name)

const redacted = (name: Variable) =>
  Config.schema(Schema.Redacted(Schema.String).annotate({ description: variables[name] }), name)

/**
 * A log level, in any case: Effect 4's names (`Warn`, `None`) and Effect 3's (`WARN`, `OFF`) alike,
 * so that one environment serves both editions.
 */
const logLevel = (name: Variable): Config.Config<LogLevel.LogLevel> =>
  text(name).pipe(Config.mapEffect((value) => {
    const word = value.toLowerCase()
    const level = word === "off" ? "None" : LogLevel.values.find((level) => level.toLowerCase() === word)
    return level === undefined
      ? Effect.fail(refuse(name, `Expected one of ${LogLevel.values.join(", ")} (any case) but received "${value}"`))
      : Effect.succeed(level)
  }))

/** One of `values`; anything else is refused with the value and the list. */
const literals = <const L extends ReadonlyArray<string>>(name: Variable, values: L): Config.Config<L[number]> =>
  text(name).pipe(Config.mapEffect((value) =>
    values.includes(value)
      ? Effect.succeed(value as L[number])
      : Effect.fail(refuse(name, `Expected one of ${values.join(", ")} but received "${value}"`))
  ))

// What `Config.Boolean` accepts.
const trueWords = ["true", "yes", "on", "1", "y"] as const
const boolean = (name: Variable) =>
  literals(name, [...trueWords, "false", "no", "off", "0", "n"]).pipe(
    Config.map((word) => (trueWords as ReadonlyArray<string>).includes(word))
  )

/** A text variable whose value must pass `problem` (which says what is wrong, or undefined). */
const checked = (name: Variable, problem: (value: string) => string | undefined) =>
  text(name).pipe(Config.mapEffect((value) => {
    const found = problem(value)
    return found === undefined ? Effect.succeed(value) : Effect.fail(refuse(name, found))
  }))

const optional = Config.option

// A variable set to nothing is unset, as Codex reads `CODEX_HOME` (and a shell's `HOME`).
const nonEmpty = (name: Variable | "HOME") =>
  (name === "HOME" ? Config.String(name) : text(name)).pipe(
    Config.mapEffect((value) => value === "" ? Effect.fail(refuse(name, `${name} is empty`)) : Effect.succeed(value))
  )

/** `CODEX_HOME`, else `$HOME/.codex`, else the user's home folder's `.codex`; an empty value is unset. */
export const codexHomeConfig: Config.Config<string> = nonEmpty("CODEX_HOME").pipe(
  Config.orElse(() => nonEmpty("HOME").pipe(Config.map(codexHomeIn))),
  Config.orElse(() => Config.succeed(undefined).pipe(Config.map(() => codexHomeIn(homedir()))))
)

/** A text variable read by `parse` (undefined: refused as not `allowed`). */
const parsed = <A>(name: Variable, parse: (value: string) => A | undefined, allowed: string) =>
  text(name).pipe(Config.mapEffect((value) => {
    const result = parse(value)
    return result === undefined
      ? Effect.fail(refuse(name, `Expected ${allowed} but received "${value}"`))
      : Effect.succeed(result)
  }))

/** A duration variable; a negative one is refused by its text, since a `Duration` below zero is zero. */
const durationOf = (name: Variable, rule: DurationRule) =>
  text(name).pipe(Config.mapEffect((value) =>
    Option.match(Duration.fromInput(value.trim() as Duration.Input), {
      onNone: () => Effect.fail(refuse(name, `Expected a duration (e.g. 30 seconds) but received "${value}"`)),
      onSome: (duration) =>
        !value.trim().startsWith("-") && durationFits(Duration.toMillis(duration), rule)
          ? Effect.succeed(duration)
          : Effect.fail(refuse(name, `Expected ${durationAllowed[rule]} but received "${value}"`))
    })
  ))

const managerConfig: Config.Config<Partial<Settings>> = Config.all({
  refreshWindow: optional(durationOf("EFFECT_AUTH_REFRESH_WINDOW", "nonNegative")),
  minRefreshInterval: optional(durationOf("EFFECT_AUTH_MIN_REFRESH_INTERVAL", "nonNegative")),
  backoffBase: optional(durationOf("EFFECT_AUTH_BACKOFF_BASE", "positive")),
  requiresOpenaiAuth: optional(boolean("EFFECT_AUTH_REQUIRES_OPENAI_AUTH"))
}).pipe(Config.map((manager): Partial<Settings> => ({
  ...Option.match(manager.refreshWindow, { onNone: () => ({}), onSome: (refreshWindow) => ({ refreshWindow }) }),
  ...Option.match(manager.minRefreshInterval, {
    onNone: () => ({}),
    onSome: (minRefreshInterval) => ({ minRefreshInterval })
  }),
  ...Option.match(manager.backoffBase, { onNone: () => ({}), onSome: (backoffBase) => ({ backoffBase }) }),
  ...Option.match(manager.requiresOpenaiAuth, {
    onNone: () => ({}),
    onSome: (requiresOpenaiAuth) => ({ requiresOpenaiAuth })
  })
})))

const databaseConfig = Config.all({
  url: redacted("EFFECT_AUTH_DATABASE_URL").pipe(
    Config.mapEffect((url) =>
      isDatabaseUrl(Redacted.value(url))
        // The URL holds a password: its value is never repeated.
        ? Effect.succeed(url)
        : Effect.fail(refuse("EFFECT_AUTH_DATABASE_URL", "Expected a postgres:// URL"))
    )
  ),
  credentialKey: text("EFFECT_AUTH_CREDENTIAL_KEY").pipe(Config.withDefault(defaultCredentialKey)),
  tablePrefix: checked("EFFECT_AUTH_DATABASE_TABLE_PREFIX", tablePrefixProblem).pipe(
    Config.withDefault(defaultTablePrefix)
  ),
  poolSize: parsed("EFFECT_AUTH_DATABASE_POOL_SIZE", parsePoolSize, poolSizeAllowed).pipe(
    Config.withDefault(defaultPoolSize)
  )
})

/** `Options` from the environment (`variables`), through Effect's `Config`. */
export const config: Config.Config<Options> = Config.all({
  codexHome: codexHomeConfig,
  credentialsStore: optional(literals("EFFECT_AUTH_CREDENTIALS_STORE", credentialsStoreModes)),
  refreshTimeout: durationOf("EFFECT_AUTH_REFRESH_TIMEOUT", "positive").pipe(
    Config.withDefault(defaultRefreshTimeout)
  ),
  tokenEndpoint: Config.all({
    // A typo here would fail every refresh: it is refused when the program starts instead.
    url: checked(
      "CODEX_REFRESH_TOKEN_URL_OVERRIDE",
      (url) => tokenUrlProblem(url) === undefined ? undefined : "Expected an http:// or https:// URL"
    ).pipe(Config.withDefault(codexTokenUrl)),
    clientId: text("EFFECT_AUTH_CLIENT_ID").pipe(Config.withDefault(codexClientId)),
    clientSecret: optional(redacted("EFFECT_AUTH_CLIENT_SECRET")),
    bodyFormat: literals("EFFECT_AUTH_REFRESH_BODY", ["json", "form"]).pipe(Config.withDefault(defaultBodyFormat))
  }),
  manager: managerConfig,
  signIn: Config.all({
    issuer: optional(text("EFFECT_AUTH_ISSUER")),
    clientId: optional(text("EFFECT_AUTH_CLIENT_ID")),
    clientSecret: optional(redacted("EFFECT_AUTH_CLIENT_SECRET")),
    clientAuth: optional(literals("EFFECT_AUTH_CLIENT_AUTH", clientAuths)),
    scopes: optional(text("EFFECT_AUTH_SCOPES")),
    codexIssuer: text("CODEX_APP_SERVER_LOGIN_ISSUER").pipe(Config.withDefault(codexIssuer)),
    codexClientId: text("CODEX_APP_SERVER_LOGIN_CLIENT_ID").pipe(Config.withDefault(codexClientId)),
    originator: text("EFFECT_AUTH_LOGIN_ORIGINATOR").pipe(Config.withDefault(defaultOriginator)),
    ports: optional(parsed("EFFECT_AUTH_LOGIN_PORTS", parsePorts, portsAllowed)),
    timeout: durationOf("EFFECT_AUTH_LOGIN_TIMEOUT", "positive").pipe(Config.withDefault(defaultSignInTimeout))
  }),
  database: optional(databaseConfig),
  logLevel: optional(logLevel("EFFECT_AUTH_LOG_LEVEL"))
})
