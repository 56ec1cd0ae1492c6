import * as NodeContext from "@effect/platform-node/NodeContext"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as Cli from "../src/Cli.js"
import { parseStatusArgs, runStatus } from "../src/internal/cliStatus.js"
import { captureCli } from "./support/cli.js"
import { apiKeyJson, chatgptJson } from "./support/fixtures.js"
import { dead, scripted } from "./support/manager.js"

// The bin answers a plain `status` without the command-line parser (start-up, issue #14):
// it must print exactly what the full command line prints, and leave everything else to it.

/** Runs `program` over a memory store; what it printed and its exit code. */
const capture = <E>(program: Effect.Effect<void, E, any>, json: object | undefined, script: Parameters<typeof scripted>[1]) =>
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
    expect(parseStatusArgs(["status", "--refresh", "--json"])).toEqual({ json: true, includeToken: false, refresh: true })
  })
})
