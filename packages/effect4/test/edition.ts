/**
 * The Effect 4 edition behind the scenarios' adapter (test/scenarios/edition.ts at the repository's
 * root), built from the edition's public names as a user would: a manager (`AuthManager.layer`) over a
 * memory or file store and a scripted or HTTP refresher, the authorized client, all on the TestClock,
 * held by a `ManagedRuntime` that each Promise-returning operation runs in.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as NodePath from "@effect/platform-node/NodePath"
import {
  Cause,
  Clock,
  Duration,
  Effect,
  Exit,
  Layer,
  Logger,
  ManagedRuntime,
  Option,
  Random,
  Redacted,
  References,
  Result,
  Tracer
} from "effect"
import { TestClock } from "effect/testing"
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Edition, Failure, Refresher, Step, World, WorldOptions } from "../../../test/scenarios/edition.js"
import {
  AuthDocument,
  AuthHttpClient,
  AuthManager,
  AuthStore,
  Configuration,
  PermanentRefreshError,
  type ScriptStep,
  SignIn,
  TokenRefresher,
  TransientRefreshError
} from "../src/index.js"
import { PgStore } from "../src/postgres/index.js"
import { TokenRefresherTest } from "../src/testing/index.js"

const stepOf = (step: Step): ScriptStep => {
  switch (step._tag) {
    case "Rotated":
      return Effect.succeed({
        accessToken: Redacted.make(step.access),
        ...(step.refresh === undefined ? {} : { refreshToken: Redacted.make(step.refresh) })
      })
    case "Dead":
      return Effect.fail(new PermanentRefreshError({ reason: step.reason, status: 401 }))
    case "Down":
      return Effect.fail(
        new TransientRefreshError({
          kind: "status",
          detail: "HTTP 503",
          status: 503,
          ...(step.retryAfterSeconds === undefined ? {} : { retryAfter: Duration.seconds(step.retryAfterSeconds) })
        })
      )
  }
}

const refresherOf = (refresher: Refresher) =>
  refresher._tag === "Scripted"
    ? TokenRefresher.layerTest(refresher.steps.map(stepOf))
    : Layer.effect(TokenRefresher, TokenRefresher.makeHttp({ tokenUrl: refresher.tokenUrl })).pipe(
      Layer.provide(NodeHttpClient.layerUndici)
    )

/** JSON text of what a span holds: its times and some attributes (a lock key, say) are bigints. */
const spanJson = (value: unknown) =>
  JSON.stringify(value, (_key, item) => typeof item === "bigint" ? item.toString() : item)

/** Every log line (logfmt) and every span that ended (name, attributes, events, outcome), as text. */
const makeCapture = () => {
  const lines: Array<string> = []
  const logger = Logger.make((options) => {
    lines.push(String(Logger.formatLogFmt.log(options)))
  })
  const tracer = Tracer.make({
    span(options) {
      const span = new Tracer.NativeSpan(options)
      const end = span.end.bind(span)
      span.end = (endTime, exit) => {
        const outcome = Exit.isFailure(exit) ? Cause.pretty(exit.cause) : "ok"
        lines.push(
          `span ${span.name} ${spanJson([...span.attributes])} ${spanJson(span.events)} ${outcome}`
        )
        end(endTime, exit)
      }
      return span
    }
  })
  const layer = Layer.mergeAll(
    Logger.layer([logger]),
    Layer.succeed(References.MinimumLogLevel, "All"),
    Layer.succeed(Tracer.Tracer, tracer)
  )
  return { layer, text: () => lines.join("\n") }
}

/** The seeded draws of `Random.withSeed`, as a layer for the whole world. */
const seededRandom = (seed: string) =>
  Layer.effect(
    Random.Random,
    Effect.gen(function*() {
      return yield* Random.Random
    }).pipe(Random.withSeed(seed))
  )

const failureOf = (error: unknown): Failure => {
  const e = error as { readonly _tag?: string; readonly message?: string }
  return { tag: e._tag ?? "unknown", message: e.message ?? "", printed: `${String(error)}\n${JSON.stringify(error)}` }
}

/** The typed failure of an exit (null on success); a defect is thrown, as a bug. */
const failureOfExit = <A, E>(exit: Exit.Exit<A, E>): Failure | null => {
  if (Exit.isSuccess(exit)) return null
  const failure = Cause.findErrorOption(exit.cause)
  if (Option.isNone(failure)) throw new Error(Cause.pretty(exit.cause))
  return failureOf(failure.value)
}

/** The world's store: memory, the auth.json of its CODEX_HOME, or a credential in PostgreSQL (seeded first). */
const storeOf = async (options: WorldOptions) => {
  if (options.store === "memory") return AuthStore.layerMemory(options.auth)
  if (options.store === "file") {
    return AuthStore.layerFile.pipe(Layer.provide(Layer.merge(NodeFileSystem.layer, NodePath.layer)))
  }
  const database = options.database!
  const store = AuthStore.layerKeyed("default").pipe(
    Layer.provide(PgStore.layer({ url: Redacted.make(database.url), prefix: database.prefix }))
  )
  if (options.auth !== undefined) {
    const seeding = ManagedRuntime.make(store)
    const doc = Result.getOrThrow(AuthDocument.decode(options.auth))
    await seeding.runPromise(Effect.flatMap(AuthStore, (saved) => saved.save(doc)))
    await seeding.dispose()
  }
  return store
}

const makeWorld = async (options: WorldOptions): Promise<World> => {
  const home = options.store === "file"
    ? options.codexHome ?? mkdtempSync(join(tmpdir(), "effect-auth-scenario-v4-"))
    : undefined
  const ownHome = options.store === "file" && options.codexHome === undefined
  const authJson = home === undefined ? undefined : join(home, "auth.json")
  if (authJson !== undefined && ownHome && options.auth !== undefined) {
    writeFileSync(authJson, JSON.stringify(options.auth), { mode: 0o600 })
  }
  const capture = makeCapture()
  const store = await storeOf(options)
  const configuration = Configuration.layer({
    ...(home === undefined ? {} : { codexHome: home }),
    ...(options.issuer === undefined ? {} : { signIn: { codexIssuer: options.issuer, ports: Option.some([0]) } })
  })
  const services = Layer.merge(AuthHttpClient.layer, SignIn.layer).pipe(
    Layer.provideMerge(AuthManager.layer),
    Layer.provideMerge(Layer.mergeAll(store, refresherOf(options.refresher), NodeHttpClient.layerUndici)),
    Layer.provideMerge(configuration),
    // Under everything, so that the manager's own fibers see the test clock, the seeded draws and the capture.
    Layer.provideMerge(Layer.mergeAll(TestClock.layer(), seededRandom("scenarios"), capture.layer))
  )
  const runtime = ManagedRuntime.make(services)
  await runtime.runPromise(Effect.void)

  const manager = <A, E>(f: (auth: AuthManager["Service"]) => Effect.Effect<A, E>) =>
    runtime.runPromise(Effect.flatMap(AuthManager, f))
  const managerExit = <A, E>(f: (auth: AuthManager["Service"]) => Effect.Effect<A, E>) =>
    runtime.runPromiseExit(Effect.flatMap(AuthManager, f)).then(failureOfExit)

  return {
    codexHome: home,
    getAuthStatus: (params = {}) =>
      manager((auth) => auth.getAuthStatus(params)).then((status) => ({
        ...status,
        authToken: status.authToken === null ? null : Redacted.value(status.authToken)
      })),
    state: () => manager((auth) => auth.state),
    refresh: () => managerExit((auth) => auth.refresh),
    loginWithApiKey: (apiKey) => manager((auth) => auth.loginWithApiKey(Redacted.make(apiKey))).then(() => undefined),
    loginWithTokens: (tokens) =>
      manager((auth) =>
        auth.loginWithTokens({
          idToken: Redacted.make(tokens.idToken),
          accessToken: Redacted.make(tokens.access),
          refreshToken: Redacted.make(tokens.refresh)
        })
      ).then(() => undefined),
    logout: () => manager((auth) => auth.logout).then(() => undefined),
    signInWithBrowser: async (browser) => {
      const login = await runtime.runPromise(Effect.flatMap(SignIn, (signIn) => signIn.startBrowser()))
      await browser(login.authUrl)
      const exit = await runtime.runPromiseExit(login.await)
      return Exit.isSuccess(exit) ? { state: exit.value } : { failure: failureOfExit(exit)! }
    },
    reload: () => managerExit((auth) => auth.reload),
    writeBehind: async (auth) => {
      if (authJson === undefined) {
        const doc = Result.getOrThrow(AuthDocument.decode(auth))
        await runtime.runPromise(Effect.flatMap(AuthStore, (store) => store.save(doc)))
      } else {
        // As Codex writes it: a whole new file renamed over the old one.
        writeFileSync(`${authJson}.writing`, JSON.stringify(auth), { mode: 0o600 })
        renameSync(`${authJson}.writing`, authJson)
      }
    },
    refreshCalls: async () => {
      const test = await runtime.runPromise(Effect.serviceOption(TokenRefresherTest))
      if (Option.isNone(test)) {
        throw new Error("refreshCalls counts the scripted refresher's calls: this world has none")
      }
      return (await runtime.runPromise(test.value.calls)).map(Redacted.value)
    },
    stored: async () => {
      if (authJson !== undefined) return existsSync(authJson) ? JSON.parse(readFileSync(authJson, "utf8")) : undefined
      const snapshot = await runtime.runPromise(Effect.flatMap(AuthStore, (store) => store.load))
      return Option.match(snapshot.document, { onNone: () => undefined, onSome: AuthDocument.toJson })
    },
    request: async (url) => {
      const exit = await runtime.runPromiseExit(
        Effect.flatMap(AuthHttpClient, (client) => Effect.map(client.get(url), (r) => r.status))
      )
      return Exit.isSuccess(exit) ? { status: exit.value } : { failure: failureOfExit(exit)! }
    },
    clock: {
      now: () => runtime.runPromise(Clock.currentTimeMillis),
      adjust: (millis) => runtime.runPromise(TestClock.adjust(Duration.millis(millis))),
      setTime: (millis) => runtime.runPromise(TestClock.setTime(millis))
    },
    logs: async () => capture.text(),
    close: async () => {
      await runtime.dispose()
      if (ownHome) rmSync(home!, { recursive: true, force: true })
    }
  }
}

/** The Effect 4 edition (packages/effect4/src), as the scenarios drive it. */
export const effect4: Edition = {
  name: "Effect 4 edition",
  makeWorld
}
