/**
 * The Effect 3 edition behind the scenarios' adapter (edition.ts), built from its public entry points
 * as a user would: a manager (`AuthManager.layer`) over a memory or file store and a scripted or HTTP
 * refresher, the authorized client, all on a TestClock, held by a `ManagedRuntime` that each
 * Promise-returning operation runs in.
 */
import { NodeFileSystem, NodePath } from "@effect/platform-node"
import {
  Cause,
  Clock,
  Duration,
  Effect,
  Either,
  Exit,
  Layer,
  ManagedRuntime,
  Option,
  Random,
  Redacted,
  TestClock,
  TestContext
} from "effect"
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import {
  AuthDocument,
  AuthHttpClient,
  AuthManager,
  AuthStore,
  Configuration,
  layerNodeHttpClient,
  PermanentRefreshError,
  type ScriptStep,
  SignIn,
  TokenRefresher,
  TransientRefreshError
} from "../../src/index.js"
import { PgStore } from "../../src/postgres/index.js"
import { TokenRefresherTest } from "../../src/testing/index.js"
import { makeCapture } from "../support/capture.js"
import type { Edition, Failure, Refresher, Step, World, WorldOptions } from "./edition.js"

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
      Layer.provide(layerNodeHttpClient)
    )

const failureOf = (error: unknown): Failure => {
  const e = error as { readonly _tag?: string; readonly message?: string }
  return { tag: e._tag ?? "unknown", message: e.message ?? "", printed: `${String(error)}\n${JSON.stringify(error)}` }
}

/** The typed failure of an exit (null on success); a defect is thrown, as a bug. */
const failureOfExit = <A, E>(exit: Exit.Exit<A, E>): Failure | null => {
  if (Exit.isSuccess(exit)) return null
  const failure = Cause.failureOption(exit.cause)
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
    const doc = Either.getOrThrow(AuthDocument.decode(options.auth))
    await seeding.runPromise(Effect.flatMap(AuthStore, (saved) => saved.save(doc)))
    await seeding.dispose()
  }
  return store
}

const makeWorld = async (options: WorldOptions): Promise<World> => {
  const home = options.store === "file"
    ? options.codexHome ?? mkdtempSync(join(tmpdir(), "effect-auth-scenario-"))
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
    Layer.provideMerge(Layer.mergeAll(store, refresherOf(options.refresher), layerNodeHttpClient)),
    Layer.provideMerge(configuration),
    // Built first, so that the manager's own fibers see the test clock, the seeded draws and the capture.
    Layer.provide(Layer.mergeAll(TestContext.TestContext, Layer.setRandom(Random.make("scenarios")), capture.layer))
  )
  const runtime = ManagedRuntime.make(services)
  await runtime.runPromise(Effect.void)

  const manager = <A, E>(f: (auth: typeof AuthManager.Service) => Effect.Effect<A, E>) =>
    runtime.runPromise(Effect.flatMap(AuthManager, f))
  const managerExit = <A, E>(f: (auth: typeof AuthManager.Service) => Effect.Effect<A, E>) =>
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
        const doc = Either.getOrThrow(AuthDocument.decode(auth))
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
        Effect.flatMap(AuthHttpClient, (client) => Effect.scoped(Effect.map(client.get(url), (r) => r.status)))
      )
      return Exit.isSuccess(exit) ? { status: exit.value } : { failure: failureOfExit(exit)! }
    },
    clock: {
      now: () => runtime.runPromise(Clock.currentTimeMillis),
      adjust: (millis) => runtime.runPromise(TestClock.adjust(Duration.millis(millis))),
      setTime: (millis) => runtime.runPromise(TestClock.setTime(millis))
    },
    logs: () => runtime.runPromise(capture.text),
    close: async () => {
      await runtime.dispose()
      if (ownHome) rmSync(home!, { recursive: true, force: true })
    }
  }
}

/** The Effect 3 edition (src/), as the scenarios drive it. */
export const effect3: Edition = { name: "Effect 3 edition", makeWorld }
