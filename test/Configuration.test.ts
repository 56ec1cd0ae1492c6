import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Exit, Layer, LogLevel, Option, Redacted } from "effect"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { AuthStore } from "../src/AuthStore.js"
import { Configuration, variables } from "../src/Configuration.js"
import { layerNodeWith } from "../src/layerNode.js"
import * as NodeContext from "@effect/platform-node/NodeContext"

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
  ["EFFECT_AUTH_LOG_LEVEL", "Debug"]
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
      expect(c.logLevel).toBe(LogLevel.Debug)
    }))

  it.effect("layerConfig refuses, naming the variable, what cannot work", () =>
    Effect.gen(function*() {
      for (
        const [name, value] of [
          ["CODEX_REFRESH_TOKEN_URL_OVERRIDE", "htps://typo.example/token"],
          ["EFFECT_AUTH_DATABASE_URL", "mysql://127.0.0.1/db"],
          ["EFFECT_AUTH_LOGIN_PORTS", "1455,http"],
          ["EFFECT_AUTH_REFRESH_TIMEOUT", "soon"],
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
        Effect.provide(layerNodeWith({ codexHome: "/srv/in-code" })),
        Effect.withConfigProvider(ConfigProvider.fromMap(wrong))
      )
      expect(store).toBe("/srv/in-code/auth.json")
    }))

  it("the README's table names every variable", () => {
    const readme = readFileSync(join(import.meta.dirname, "..", "README.md"), "utf8")
    for (const name of Object.keys(variables)) expect(readme).toContain(`\`${name}\``)
  })
})

describe("the configured layers", () => {
  const locationOf = Effect.map(AuthStore, (store) => store.location)
  const environment = ConfigProvider.fromMap(new Map([["CODEX_HOME", "/from/environment"]]))

  it.effect("read the environment through Config when no Configuration is provided (SPEC §6)", () =>
    Effect.gen(function*() {
      const location = yield* locationOf.pipe(
        Effect.provide(AuthStore.layerFile.pipe(Layer.provide(NodeContext.layer))),
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
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["CODEX_HOME", "/from/environment"], ["EFFECT_AUTH_LOG_LEVEL", "}{"]])))
      )
      expect(location).toBe("/in/code/auth.json")
    }))
})
