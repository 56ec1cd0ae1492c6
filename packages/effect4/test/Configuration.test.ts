import { variables } from "@effect-auth-manager/core/variables"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import { Cause, ConfigProvider, Context, Duration, Effect, Exit, Layer, Option, Redacted } from "effect"
import { homedir } from "node:os"
import type * as ConfigurationModule from "../src/config/Configuration.js"
import { Configuration } from "../src/config/Configuration.js"
import { TokenRefresher } from "../src/oauth/TokenRefresher.js"

/** A value for every variable, each one distinct. */
const everything = new Map<string, string>([
  ["CODEX_HOME", "/srv/codex"],
  ["EFFECT_AUTH_REFRESH_TIMEOUT", "12 seconds"],
  ["CODEX_REFRESH_TOKEN_URL_OVERRIDE", "https://idp.example/token"],
  ["EFFECT_AUTH_CLIENT_ID", "client-1"],
  ["EFFECT_AUTH_CLIENT_SECRET", "client-secret-SECRET"],
  ["EFFECT_AUTH_REFRESH_BODY", "form"],
  ["EFFECT_AUTH_REFRESH_WINDOW", "2 minutes"],
  ["EFFECT_AUTH_MIN_REFRESH_INTERVAL", "7 seconds"],
  ["EFFECT_AUTH_BACKOFF_BASE", "250 millis"],
  ["EFFECT_AUTH_REQUIRES_OPENAI_AUTH", "false"],
  ["EFFECT_AUTH_ISSUER", "https://idp.example"],
  ["EFFECT_AUTH_CLIENT_AUTH", "client_secret_basic"],
  ["EFFECT_AUTH_SCOPES", "openid email"],
  ["CODEX_APP_SERVER_LOGIN_ISSUER", "https://codex-issuer.example"],
  ["CODEX_APP_SERVER_LOGIN_CLIENT_ID", "codex-client"],
  ["EFFECT_AUTH_LOGIN_ORIGINATOR", "tests"],
  ["EFFECT_AUTH_LOGIN_PORTS", "1455,0"],
  ["EFFECT_AUTH_LOGIN_TIMEOUT", "3 minutes"],
  ["EFFECT_AUTH_DATABASE_URL", "postgres://user:pw@127.0.0.1:5432/db"],
  ["EFFECT_AUTH_CREDENTIAL_KEY", "tenant-7"],
  ["EFFECT_AUTH_DATABASE_TABLE_PREFIX", "auth"],
  ["EFFECT_AUTH_DATABASE_POOL_SIZE", "8"],
  ["EFFECT_AUTH_LOG_LEVEL", "Debug"],
  ["EFFECT_AUTH_CREDENTIALS_STORE", "ephemeral"]
])

const providerOf = (env: ReadonlyMap<string, string>) => ConfigProvider.fromUnknown(Object.fromEntries(env))

/** What `layer` builds into, or how it fails, under the environment `env`. */
const build = (layer: Layer.Layer<Configuration, unknown>, env: ReadonlyMap<string, string> = new Map()) =>
  Effect.exit(Effect.scoped(Effect.map(Layer.build(layer), (context) => Context.get(context, Configuration)))).pipe(
    Effect.provideService(ConfigProvider.ConfigProvider, providerOf(env))
  )

const fromEnvironment = (env: ReadonlyMap<string, string>) => build(Configuration.layerConfig, env)

/** The error as the programs print it; undefined when the layer builds. */
const refusalOf = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isFailure(exit) ? String(Cause.squash(exit.cause)) : undefined
const refusalFrom = (env: ReadonlyMap<string, string>) => Effect.map(fromEnvironment(env), refusalOf)
const refusalIn = (input: ConfigurationModule.Input) => Effect.map(build(Configuration.layer(input)), refusalOf)

const expectRefused = (message: string | undefined, ...parts: ReadonlyArray<string>) => {
  expect(message).toBeDefined()
  for (const part of parts) expect(message).toContain(part)
  expect(message).not.toContain("\n")
}

describe("Configuration.layerConfig", () => {
  it("the test sets every variable the module names, and nothing else", () => {
    expect([...everything.keys()].sort()).toEqual(Object.keys(variables).sort())
  })

  it.effect("reads every variable into its place", () =>
    Effect.gen(function*() {
      const c = yield* Effect.flatten(fromEnvironment(everything))
      expect(c.codexHome).toBe("/srv/codex")
      expect(c.credentialsStore).toEqual(Option.some("ephemeral"))
      expect(Duration.toMillis(c.refreshTimeout)).toBe(12_000)
      expect(c.tokenEndpoint.url).toBe("https://idp.example/token")
      expect(c.tokenEndpoint.clientId).toBe("client-1")
      expect(Option.map(c.tokenEndpoint.clientSecret, Redacted.value)).toEqual(Option.some("client-secret-SECRET"))
      expect(c.tokenEndpoint.bodyFormat).toBe("form")
      expect(Duration.toMillis(c.manager.refreshWindow!)).toBe(120_000)
      expect(Duration.toMillis(c.manager.minRefreshInterval!)).toBe(7_000)
      expect(Duration.toMillis(c.manager.backoffBase!)).toBe(250)
      expect(c.manager.requiresOpenaiAuth).toBe(false)
      expect(c.signIn.issuer).toEqual(Option.some("https://idp.example"))
      expect(c.signIn.clientId).toEqual(Option.some("client-1"))
      expect(c.signIn.clientAuth).toEqual(Option.some("client_secret_basic"))
      expect(c.signIn.scopes).toEqual(Option.some("openid email"))
      expect(c.signIn.codexIssuer).toBe("https://codex-issuer.example")
      expect(c.signIn.codexClientId).toBe("codex-client")
      expect(c.signIn.originator).toBe("tests")
      expect(c.signIn.ports).toEqual(Option.some([1455, 0]))
      expect(Duration.toMillis(c.signIn.timeout)).toBe(180_000)
      const database = Option.getOrThrow(c.database)
      expect(Redacted.value(database.url)).toBe("postgres://user:pw@127.0.0.1:5432/db")
      expect(database.credentialKey).toBe("tenant-7")
      expect(database.tablePrefix).toBe("auth")
      expect(database.poolSize).toBe(8)
      expect(c.logLevel).toEqual(Option.some("Debug"))
    }))

  it.effect("with no variable set, every default", () =>
    Effect.gen(function*() {
      const c = yield* Effect.flatten(fromEnvironment(new Map([["HOME", "/home/someone"]])))
      expect(c.codexHome).toBe("/home/someone/.codex")
      expect(c.tokenEndpoint).toEqual({
        url: "https://auth.openai.com/oauth/token",
        clientId: "app_EMoamEEZ73f0CkXaXp7hrann",
        clientSecret: Option.none(),
        bodyFormat: "json"
      })
      expect(Duration.toMillis(c.refreshTimeout)).toBe(30_000)
      expect(c.manager).toEqual({})
      expect(c.database).toEqual(Option.none())
      expect(c.signIn.originator).toBe("codex_cli_rs")
      expect(Duration.toMillis(c.signIn.timeout)).toBe(600_000)
      expect(c.logLevel).toEqual(Option.none())
    }))

  it.effect("refuses, naming the variable, what cannot work", () =>
    Effect.gen(function*() {
      for (
        const [name, value] of [
          ["CODEX_REFRESH_TOKEN_URL_OVERRIDE", "htps://typo.example/token"],
          ["EFFECT_AUTH_DATABASE_URL", "mysql://127.0.0.1/db"],
          ["EFFECT_AUTH_LOGIN_PORTS", "1455,http"],
          ["EFFECT_AUTH_REFRESH_TIMEOUT", "soon"],
          ["EFFECT_AUTH_REQUIRES_OPENAI_AUTH", "maybe"],
          ["EFFECT_AUTH_DATABASE_POOL_SIZE", "0"],
          ["EFFECT_AUTH_DATABASE_POOL_SIZE", "2.5"]
        ] as const
      ) {
        expectRefused(yield* refusalFrom(new Map([[name, value]])), name)
      }
    }))

  it.effect("a word not in a variable's list is refused with the value and the list", () =>
    Effect.gen(function*() {
      expectRefused(
        yield* refusalFrom(new Map([["EFFECT_AUTH_CREDENTIALS_STORE", "keychain"]])),
        "EFFECT_AUTH_CREDENTIALS_STORE",
        `"keychain"`,
        "file, keyring, auto, ephemeral"
      )
      expectRefused(
        yield* refusalFrom(new Map([["EFFECT_AUTH_LOG_LEVEL", "loud"]])),
        "EFFECT_AUTH_LOG_LEVEL",
        `"loud"`,
        "Debug"
      )
      expectRefused(
        yield* refusalFrom(new Map([["EFFECT_AUTH_REFRESH_BODY", "xml"]])),
        "EFFECT_AUTH_REFRESH_BODY",
        "json, form"
      )
    }))

  it.effect("a log level is read in any case, by either edition's names (WARN, Warn, warn; OFF is None)", () =>
    Effect.gen(function*() {
      const levelOf = (value: string) =>
        Effect.map(
          Effect.flatten(fromEnvironment(new Map([["HOME", "/home/someone"], ["EFFECT_AUTH_LOG_LEVEL", value]]))),
          (c) => c.logLevel
        )
      for (const value of ["WARN", "Warn", "warn"]) expect(yield* levelOf(value)).toEqual(Option.some("Warn"))
      expect(yield* levelOf("OFF")).toEqual(Option.some("None"))
      expect(yield* levelOf("none")).toEqual(Option.some("None"))
      expect(yield* levelOf("DEBUG")).toEqual(Option.some("Debug"))
    }))

  it.effect("never repeats a secret it refuses", () =>
    Effect.gen(function*() {
      const url = "mysql://user:db-password-SECRET@127.0.0.1/db"
      const refusal = yield* refusalFrom(new Map([["EFFECT_AUTH_DATABASE_URL", url]]))
      expectRefused(refusal, "EFFECT_AUTH_DATABASE_URL", "postgres://")
      expect(refusal).not.toContain("db-password-SECRET")
    }))

  it.effect("a duration at or below zero is refused with its value and what is allowed", () =>
    Effect.gen(function*() {
      for (const name of ["EFFECT_AUTH_BACKOFF_BASE", "EFFECT_AUTH_REFRESH_TIMEOUT", "EFFECT_AUTH_LOGIN_TIMEOUT"]) {
        for (const value of ["-5 seconds", "0 seconds", "-1 millis"]) {
          expectRefused(yield* refusalFrom(new Map([[name, value]])), name, `"${value}"`, "more than zero")
        }
        expect(yield* refusalFrom(new Map([[name, "5 seconds"]]))).toBeUndefined()
      }
      // A window of zero refreshes at expiry, a minimum interval of zero is no guard; below zero, either is a typo.
      for (const name of ["EFFECT_AUTH_REFRESH_WINDOW", "EFFECT_AUTH_MIN_REFRESH_INTERVAL"]) {
        for (const value of ["-5 seconds", "-1 millis"]) {
          expectRefused(yield* refusalFrom(new Map([[name, value]])), name, `"${value}"`, "zero or more")
        }
        expect(yield* refusalFrom(new Map([[name, "0 seconds"]]))).toBeUndefined()
      }
    }))

  it.effect("CODEX_HOME set to nothing is unset, as Codex takes it: $HOME/.codex", () =>
    Effect.gen(function*() {
      const c = yield* Effect.flatten(fromEnvironment(new Map([["CODEX_HOME", ""], ["HOME", "/home/someone"]])))
      expect(c.codexHome).toBe("/home/someone/.codex")
    }))

  it.effect("from the process environment, a variable set to nothing is unset (Effect 4's fromEnv)", () =>
    Effect.gen(function*() {
      const c = yield* Effect.flatten(
        Effect.exit(Effect.scoped(Effect.map(Layer.build(Configuration.layerConfig), Context.get(Configuration)))).pipe(
          Effect.provideService(
            ConfigProvider.ConfigProvider,
            ConfigProvider.fromEnv({
              env: { CODEX_HOME: "", HOME: "/home/someone", EFFECT_AUTH_LOGIN_PORTS: "", EFFECT_AUTH_CLIENT_SECRET: "" }
            })
          )
        )
      )
      expect(c.codexHome).toBe("/home/someone/.codex")
      expect(c.signIn.ports).toEqual(Option.none())
      expect(c.tokenEndpoint.clientSecret).toEqual(Option.none())
    }))

  it.effect("EFFECT_AUTH_LOGIN_PORTS with an empty item is refused (it is not port 0); an explicit 0 is any free port", () =>
    Effect.gen(function*() {
      for (const value of [" ", "1455,,1457", "1455,", ",1455", "1455,65536", "1455,-1", "1455,1e3"]) {
        expectRefused(
          yield* refusalFrom(new Map([["EFFECT_AUTH_LOGIN_PORTS", value]])),
          "EFFECT_AUTH_LOGIN_PORTS",
          `"${value}"`,
          "0 = any free port"
        )
      }
      expect(yield* refusalFrom(new Map([["EFFECT_AUTH_LOGIN_PORTS", "1455, 1457"]]))).toBeUndefined()
      expect(yield* refusalFrom(new Map([["EFFECT_AUTH_LOGIN_PORTS", "0"]]))).toBeUndefined()
    }))

  it.effect("a table prefix that is not a plain lower-case PostgreSQL name is refused", () =>
    Effect.gen(function*() {
      const url = "postgres://127.0.0.1/db"
      for (const value of ["Auth", "my auth", "auth-1", "1auth", "a".repeat(41), "auth;drop"]) {
        expectRefused(
          yield* refusalFrom(
            new Map([["EFFECT_AUTH_DATABASE_URL", url], ["EFFECT_AUTH_DATABASE_TABLE_PREFIX", value]])
          ),
          "EFFECT_AUTH_DATABASE_TABLE_PREFIX",
          `"${value}"`,
          "lower-case"
        )
      }
      for (const value of ["auth", "_auth_2", "a".repeat(40)]) {
        expect(
          yield* refusalFrom(new Map([["EFFECT_AUTH_DATABASE_URL", url], ["EFFECT_AUTH_DATABASE_TABLE_PREFIX", value]]))
        ).toBeUndefined()
      }
    }))
})

describe("Configuration.layer (in code)", () => {
  it.effect("refuses a value that cannot work, naming the setting, in one line", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [ConfigurationModule.Input, string]> = [
        [{ refreshTimeout: Duration.zero }, "refreshTimeout"],
        [{ refreshTimeout: Duration.millis(-5) }, "refreshTimeout"],
        [{ refreshTimeout: Duration.infinity }, "refreshTimeout"],
        [{ manager: { backoffBase: Duration.zero } }, "manager.backoffBase"],
        [{ manager: { backoffCap: Duration.zero } }, "manager.backoffCap"],
        [{ manager: { staleAfter: Duration.zero } }, "manager.staleAfter"],
        [{ manager: { shutdownWait: Duration.zero } }, "manager.shutdownWait"],
        [{ signIn: { timeout: Duration.zero } }, "signIn.timeout"]
      ]
      for (const [input, name] of cases) expectRefused(yield* refusalIn(input), name, "more than zero")
      expect(yield* refusalIn({ manager: { refreshWindow: Duration.zero, watchDebounce: Duration.zero } }))
        .toBeUndefined()
      expect(yield* refusalIn({})).toBeUndefined()
      expectRefused(yield* refusalIn({ tokenEndpoint: { url: "file:///etc/passwd" } }), "tokenEndpoint.url", "file:")
      expectRefused(yield* refusalIn({ signIn: { ports: Option.some([]) } }), "signIn.ports")
      expectRefused(yield* refusalIn({ signIn: { ports: Option.some([1455, 70000]) } }), "signIn.ports", "70000")
      for (const value of ["Auth", "", "auth;drop"]) {
        expectRefused(
          yield* refusalIn({ database: { url: Redacted.make("postgres://127.0.0.1/db"), tablePrefix: value } }),
          "database.tablePrefix",
          `"${value}"`
        )
      }
    }))

  it.effect("an empty codexHome is the default folder", () =>
    Effect.gen(function*() {
      const c = yield* Effect.flatten(build(Configuration.layer({ codexHome: "" })))
      expect(c.codexHome).toBe(`${homedir()}/.codex`)
    }))

  it.effect("reads no environment variable: a configured layer builds where every variable is wrong", () =>
    Effect.gen(function*() {
      const wrong = new Map([...everything.keys()].map((name) => [name, "}{ not a value"]))
      expect(Exit.isFailure(yield* fromEnvironment(wrong))).toBe(true)
      const refresher = yield* Effect.exit(Effect.scoped(Layer.build(
        TokenRefresher.layerHttp.pipe(
          Layer.provide(Layer.merge(NodeHttpClient.layerUndici, Configuration.layer({ codexHome: "/srv/in-code" })))
        )
      ))).pipe(Effect.provideService(ConfigProvider.ConfigProvider, providerOf(wrong)))
      expect(Exit.isSuccess(refresher)).toBe(true)
    }))
})
