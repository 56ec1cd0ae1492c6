import * as NodeContext from "@effect/platform-node/NodeContext"
import * as FileSystem from "@effect/platform/FileSystem"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import * as Cli from "../src/cli/Cli.js"
import { parseStatusArgs, runStatus } from "../src/cli/CliStatus.js"
import { plainStatus } from "../src/cli/PlainStatus.js"
import { Configuration } from "../src/config/Configuration.js"
import { AuthManager } from "../src/manager/AuthManager.js"
import { layerNodeHttpClient } from "../src/node/layerNode.js"
import { TokenRefresher } from "../src/oauth/TokenRefresher.js"
import { AuthStore } from "../src/stores/AuthStore.js"
import type { SharedHealth } from "../src/stores/RefreshCoordinator.js"
import { captureCli } from "./support/cli.js"
import { apiKeyJson, chatgptJson, secrets } from "./support/fixtures.js"
import { dead, scripted } from "./support/manager.js"

// The bin answers a plain `status` without the command-line parser (so that it starts fast):
// it must print exactly what the full command line prints, and leave everything else to it.

/** Runs `program` over a memory store; what it printed and its exit code. */
const capture = <E>(
  program: Effect.Effect<void, E, any>,
  json: object | undefined,
  script: Parameters<typeof scripted>[1]
) =>
  captureCli(program).pipe(
    Effect.provide(Layer.mergeAll(scripted(json, script), NodeContext.layer)),
    Effect.map(({ code, stderr, stdout }) => ({ stdout, stderr, code }))
  ) as Effect.Effect<{ stdout: string; stderr: string; code: number }, E>

describe("effect-auth status without the parser", () => {
  const variants = [
    ["status"],
    ["status", "--json"],
    ["status", "--include-token"],
    ["status", "--json", "--include-token"],
    ["status", "--include-token", "--json", "--refresh"],
    ["status", "--refresh"]
  ]
  const stores = {
    "logged out": [undefined, []],
    "API key": [apiKeyJson(), []],
    "ChatGPT, poisoned on refresh": [chatgptJson(), [dead()]]
  } as const
  for (const [store, [json, script]] of Object.entries(stores)) {
    for (const args of variants) {
      it.effect(`${store}: ${args.join(" ")} prints and exits as the full command line does`, () =>
        Effect.gen(function*() {
          const options = parseStatusArgs(args)
          expect(options).toBeDefined()
          const fast = yield* capture(runStatus(options!), json, [...script])
          const full = yield* capture(Cli.run(["node", "effect-auth", ...args]), json, [...script])
          expect(fast).toEqual(full)
          expect(fast.stdout.length).toBeGreaterThan(0)
        }))
    }
  }

  it("leaves everything but a plain status to the parser", () => {
    for (
      const args of [
        [],
        ["--help"],
        ["status", "--help"],
        ["status", "--json", "--json"],
        ["status", "--json=true"],
        ["status", "extra"],
        ["status", "--log-level", "debug"],
        ["login", "--api-key-stdin"],
        ["statuses"],
        ["status", "--constructor"],
        ["status", "--toString"]
      ]
    ) expect(parseStatusArgs(args)).toBeUndefined()
    expect(parseStatusArgs(["status", "--refresh", "--json"])).toEqual({
      json: true,
      includeToken: false,
      refresh: true
    })
  })
})

describe("effect-auth status of the auth.json file, without the store or the manager (the bin's plain status)", () => {
  const variants = [["status"], ["status", "--json"], ["status", "--include-token"], [
    "status",
    "--json",
    "--include-token"
  ]]
  const poisoned = (hash: string) => ({ hash, state: "poisoned", reason: "reused", status: 400, at: 1_000 } as const)
  const coolingDown = (
    hash: string
  ) => ({
    hash,
    state: "cooling-down",
    until: 4_102_444_800_000,
    attempts: 2,
    kind: "status",
    status: 503,
    at: 1_000
  } as const)
  const cases: ReadonlyArray<{
    readonly name: string
    readonly text?: string
    readonly shared?: (hash: string) => SharedHealth
    readonly sidecarText?: string
  }> = [
    { name: "no auth.json" },
    { name: "an API key", text: JSON.stringify(apiKeyJson()) },
    { name: "ChatGPT, healthy", text: JSON.stringify(chatgptJson({ now: Date.now(), expiresIn: 3_600_000 })) },
    { name: "ChatGPT, poisoned by another process", text: JSON.stringify(chatgptJson()), shared: poisoned },
    {
      name: "ChatGPT, backing off after another process's failure",
      text: JSON.stringify(chatgptJson()),
      shared: coolingDown
    },
    {
      name: "ChatGPT, a poison of older credentials",
      text: JSON.stringify(chatgptJson()),
      shared: () => poisoned("0".repeat(64))
    },
    { name: "ChatGPT, a corrupt sidecar", text: JSON.stringify(chatgptJson()), sidecarText: "{corrupt" },
    { name: "a corrupt auth.json quoting a token", text: `{"tokens": {"refresh_token": "${secrets.refresh}"` }
  ]
  for (const { name, shared, sidecarText, text } of cases) {
    it.scoped(`${name}: prints and exits as the full command line over the file store does`, () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const home = yield* fs.makeTempDirectoryScoped()
        if (text !== undefined) yield* fs.writeFileString(`${home}/auth.json`, text, { mode: 0o600 })
        const files = Layer.provide(Layer.effect(AuthStore, AuthStore.makeFile({ codexHome: home })), NodeContext.layer)
        if (shared !== undefined) {
          yield* Effect.flatMap(
            AuthStore,
            (store) => Effect.flatMap(store.load, (snapshot) => store.saveShared(Option.some(shared(snapshot.hash))))
          ).pipe(
            Effect.provide(files)
          )
        }
        if (sidecarText !== undefined) yield* fs.writeFileString(`${home}/auth-refresh-state.json`, sidecarText)
        const full = Layer.scoped(AuthManager, AuthManager.make({})).pipe(
          Layer.provideMerge(Layer.merge(files, TokenRefresher.layerTest([]))),
          Layer.provideMerge(Layer.mergeAll(NodeContext.layer, layerNodeHttpClient, Configuration.layer()))
        )
        for (const args of variants) {
          const plain = yield* captureCli(plainStatus(parseStatusArgs(args)!, home))
          const reference = yield* captureCli(Cli.run(["node", "effect-auth", ...args])).pipe(Effect.provide(full))
          expect({ args, stdout: plain.stdout, code: plain.code }).toEqual({
            args,
            stdout: reference.stdout,
            code: reference.code
          })
          expect(plain.stdout.length).toBeGreaterThan(0)
          for (const secret of Object.values(secrets)) expect(plain.stderr).not.toContain(secret)
        }
      }).pipe(Effect.provide(NodeContext.layer)))
  }
})

describe("effect-auth status of nobody", () => {
  it.scoped("says which file it looked in and how to sign in, with or without the store and the manager", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const home = yield* fs.makeTempDirectoryScoped()
      const plain = yield* captureCli(plainStatus({ json: false, includeToken: false, refresh: false }, home))
      expect(plain).toMatchObject({
        code: 1,
        stdout: `Not signed in (no credentials in ${home}/auth.json). Sign in with: effect-auth login`
      })
      const files = Layer.provide(Layer.effect(AuthStore, AuthStore.makeFile({ codexHome: home })), NodeContext.layer)
      const full = Layer.scoped(AuthManager, AuthManager.make({})).pipe(
        Layer.provideMerge(Layer.merge(files, TokenRefresher.layerTest([]))),
        Layer.provideMerge(Layer.mergeAll(NodeContext.layer, layerNodeHttpClient, Configuration.layer()))
      )
      const refreshed = yield* captureCli(Cli.run(["node", "effect-auth", "status", "--refresh"])).pipe(
        Effect.provide(full)
      )
      expect(refreshed.stdout).toBe(plain.stdout)
    }).pipe(Effect.provide(NodeContext.layer)))
})
