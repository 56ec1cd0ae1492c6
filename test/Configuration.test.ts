import { variables } from "@effect-auth-manager/core/variables"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { describe, expect, it } from "@effect/vitest"
import { Cause, ConfigProvider, Context, Duration, Effect, Exit, Layer, LogLevel, Option, Redacted } from "effect"
import { readFileSync } from "node:fs"
import { homedir } from "node:os"
import * as ConfigurationReference from "../scripts/configuration-reference.js"
import * as ConfigurationModule from "../src/config/Configuration.js"
import { Configuration } from "../src/config/Configuration.js"
import { layerNodeConfigured } from "../src/node/layerNode.js"
import { AuthStore } from "../src/stores/AuthStore.js"

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

const fromEnvironment = (env: ReadonlyMap<string, string>) =>
  Effect.exit(Effect.scoped(Layer.build(Configuration.layerConfig))).pipe(
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map(env)))
  )

describe("Configuration", () => {
  it("the test sets every variable the module names, and nothing else", () => {
    expect([...everything.keys()].sort()).toEqual(Object.keys(variables).sort())
  })

  it.effect("layerConfig reads every variable into its place", () =>
    Effect.gen(function*() {
      const exit = yield* fromEnvironment(everything)
      expect(Exit.isSuccess(exit)).toBe(true)
      if (!Exit.isSuccess(exit)) return
      const c = exit.value.unsafeMap.get(Configuration.key) as Configuration["Type"]
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
      expect(c.logLevel).toEqual(Option.some(LogLevel.Debug))
    }))

  it.effect("layerConfig refuses, naming the variable, what cannot work", () =>
    Effect.gen(function*() {
      for (
        const [name, value] of [
          ["CODEX_REFRESH_TOKEN_URL_OVERRIDE", "htps://typo.example/token"],
          ["EFFECT_AUTH_DATABASE_URL", "mysql://127.0.0.1/db"],
          ["EFFECT_AUTH_LOGIN_PORTS", "1455,http"],
          ["EFFECT_AUTH_REFRESH_TIMEOUT", "soon"],
          ["EFFECT_AUTH_CREDENTIALS_STORE", "keychain"],
          ["EFFECT_AUTH_DATABASE_POOL_SIZE", "0"],
          ["EFFECT_AUTH_DATABASE_POOL_SIZE", "2.5"]
        ] as const
      ) {
        const exit = yield* fromEnvironment(new Map([[name, value]]))
        expect(Exit.isFailure(exit) && String(exit.cause)).toContain(name)
      }
    }))

  it.scoped("layer(options) reads no environment variable: a stack configured in code builds where every variable is wrong", () =>
    Effect.gen(function*() {
      const wrong = new Map([...everything.keys()].map((name) => [name, "}{ not a value"]))
      expect(Exit.isFailure(yield* fromEnvironment(wrong))).toBe(true)
      const store = yield* Effect.flatMap(AuthStore, (store) => Effect.succeed(store.location)).pipe(
        Effect.provide(layerNodeConfigured.pipe(Layer.provide(Configuration.layer({ codexHome: "/srv/in-code" })))),
        Effect.withConfigProvider(ConfigProvider.fromMap(wrong))
      )
      expect(store).toBe("/srv/in-code/auth.json")
    }))

  it("the configuration reference is the table generated from the variables' descriptions (npm run docs:config)", () => {
    const reference = readFileSync(ConfigurationReference.docPath, "utf8")
    expect(ConfigurationReference.regenerate(reference)).toBe(reference)
    for (const name of Object.keys(variables)) expect(reference).toContain(`\`${name}\``)
  })
})

describe("the configured layers", () => {
  const locationOf = Effect.map(AuthStore, (store) => store.location)
  const environment = ConfigProvider.fromMap(new Map([["CODEX_HOME", "/from/environment"]]))

  it.effect("read the environment once Configuration.layerConfig is provided", () =>
    Effect.gen(function*() {
      const location = yield* locationOf.pipe(
        Effect.provide(
          AuthStore.layerFile.pipe(Layer.provide(Layer.merge(NodeContext.layer, Configuration.layerConfig)))
        ),
        Effect.withConfigProvider(environment)
      )
      expect(location).toBe("/from/environment/auth.json")
    }))

  it.effect("take the Configuration in context when there is one, and read no environment then", () =>
    Effect.gen(function*() {
      const location = yield* locationOf.pipe(
        Effect.provide(AuthStore.layerFile.pipe(
          Layer.provide(Layer.merge(NodeContext.layer, Configuration.layer({ codexHome: "/in/code" })))
        )),
        Effect.withConfigProvider(
          ConfigProvider.fromMap(new Map([["CODEX_HOME", "/from/environment"], ["EFFECT_AUTH_LOG_LEVEL", "}{"]]))
        )
      )
      expect(location).toBe("/in/code/auth.json")
    }))
})

describe("values that cannot work are refused at start, in one line naming the setting, its value and what is allowed", () => {
  /** The error layerConfig fails with for this environment, as the programs print it; undefined when it builds. */
  const refusalFrom = (env: ReadonlyMap<string, string>) =>
    Effect.map(fromEnvironment(env), (exit) => Exit.isFailure(exit) ? String(Cause.squash(exit.cause)) : undefined)
  const refusalOf = (input: ConfigurationModule.Input) =>
    Effect.map(
      Effect.exit(Effect.scoped(Layer.build(Configuration.layer(input)))),
      (exit) => Exit.isFailure(exit) ? String(Cause.squash(exit.cause)) : undefined
    )
  const expectRefused = (message: string | undefined, ...parts: ReadonlyArray<string>) => {
    expect(message).toBeDefined()
    for (const part of parts) expect(message).toContain(part)
    expect(message).not.toContain("\n")
  }

  it.effect("a duration at or below zero, from the environment", () =>
    Effect.gen(function*() {
      for (const name of ["EFFECT_AUTH_BACKOFF_BASE", "EFFECT_AUTH_REFRESH_TIMEOUT", "EFFECT_AUTH_LOGIN_TIMEOUT"]) {
        for (const value of ["-5 seconds", "0 seconds", "-1 millis"]) {
          expectRefused(yield* refusalFrom(new Map([[name, value]])), name, `"${value}"`, "more than zero")
        }
        expect(yield* refusalFrom(new Map([[name, "5 seconds"]]))).toBeUndefined()
      }
      // A window of zero refreshes at expiry, a minimum interval of zero is no guard (tests force
      // refreshes with it); below zero, either is a typo.
      for (const name of ["EFFECT_AUTH_REFRESH_WINDOW", "EFFECT_AUTH_MIN_REFRESH_INTERVAL"]) {
        for (const value of ["-5 seconds", "-1 millis"]) {
          expectRefused(yield* refusalFrom(new Map([[name, value]])), name, `"${value}"`, "zero or more")
        }
        expect(yield* refusalFrom(new Map([[name, "0 seconds"]]))).toBeUndefined()
      }
    }))

  it.effect("a duration at or below zero, in code (Configuration.layer)", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [ConfigurationModule.Input, string]> = [
        [{ refreshTimeout: Duration.zero }, "refreshTimeout"],
        [{ refreshTimeout: Duration.millis(-5) }, "refreshTimeout"],
        [{ refreshTimeout: Duration.infinity }, "refreshTimeout"],
        [{ manager: { backoffBase: Duration.zero } }, "backoffBase"],
        [{ manager: { backoffCap: Duration.zero } }, "backoffCap"],
        [{ manager: { staleAfter: Duration.zero } }, "staleAfter"],
        [{ manager: { shutdownWait: Duration.zero } }, "shutdownWait"],
        [{ signIn: { timeout: Duration.zero } }, "signIn.timeout"]
      ]
      for (const [input, name] of cases) expectRefused(yield* refusalOf(input), name, "more than zero")
      expect(yield* refusalOf({ manager: { refreshWindow: Duration.zero, watchDebounce: Duration.zero } }))
        .toBeUndefined()
      expect(yield* refusalOf({})).toBeUndefined()
    }))

  it.effect("CODEX_HOME set to nothing is unset, as Codex takes it: $HOME/.codex", () =>
    Effect.gen(function*() {
      const exit = yield* fromEnvironment(new Map([["CODEX_HOME", ""], ["HOME", "/home/someone"]]))
      expect(Exit.isSuccess(exit)).toBe(true)
      if (!Exit.isSuccess(exit)) return
      expect((exit.value.unsafeMap.get(Configuration.key) as Configuration["Type"]).codexHome).toBe(
        "/home/someone/.codex"
      )
      const inCode = yield* Effect.scoped(
        Effect.flatMap(Layer.build(Configuration.layer({ codexHome: "" })), (context) =>
          Effect.succeed(Context.get(context, Configuration).codexHome))
      )
      expect(inCode).toBe(`${homedir()}/.codex`)
    }))

  it.effect("EFFECT_AUTH_LOGIN_PORTS with an empty item is refused (it is not port 0); an explicit 0 is any free port", () =>
    Effect.gen(function*() {
      for (const value of ["", " ", "1455,,1457", "1455,", ",1455", "1455,65536", "1455,-1", "1455,1e3"]) {
        expectRefused(
          yield* refusalFrom(new Map([["EFFECT_AUTH_LOGIN_PORTS", value]])),
          "EFFECT_AUTH_LOGIN_PORTS",
          `"${value}"`,
          "0 = any free port"
        )
      }
      expect(yield* refusalFrom(new Map([["EFFECT_AUTH_LOGIN_PORTS", "1455, 1457"]]))).toBeUndefined()
      expect(yield* refusalFrom(new Map([["EFFECT_AUTH_LOGIN_PORTS", "0"]]))).toBeUndefined()
      expectRefused(yield* refusalOf({ signIn: { ports: Option.some([]) } }), "signIn.ports")
      expectRefused(yield* refusalOf({ signIn: { ports: Option.some([1455, 70000]) } }), "signIn.ports", "70000")
    }))

  it.effect("a table prefix that is not a plain lower-case PostgreSQL name, or too long for its tables' names", () =>
    Effect.gen(function*() {
      const url = "postgres://127.0.0.1/db"
      for (const value of ["Auth", "my auth", "auth-1", "1auth", "", "a".repeat(41), "auth;drop"]) {
        expectRefused(
          yield* refusalFrom(
            new Map([["EFFECT_AUTH_DATABASE_URL", url], ["EFFECT_AUTH_DATABASE_TABLE_PREFIX", value]])
          ),
          "EFFECT_AUTH_DATABASE_TABLE_PREFIX",
          `"${value}"`,
          "lower-case"
        )
        expectRefused(
          yield* refusalOf({ database: { url: Redacted.make(url), tablePrefix: value } }),
          "database.tablePrefix",
          `"${value}"`
        )
      }
      for (const value of ["auth", "_auth_2", "a".repeat(40)]) {
        expect(
          yield* refusalFrom(new Map([["EFFECT_AUTH_DATABASE_URL", url], ["EFFECT_AUTH_DATABASE_TABLE_PREFIX", value]]))
        ).toBeUndefined()
        expect(yield* refusalOf({ database: { url: Redacted.make(url), tablePrefix: value } })).toBeUndefined()
      }
    }))
})
