import * as NodeContext from "@effect/platform-node/NodeContext"
import { describe, expect, it } from "@effect/vitest"
import { Console, Effect, Layer, Ref, Stream } from "effect"
import * as Cli from "../src/Cli.js"
import { scripted } from "./support/manager.js"
import { secrets } from "./support/fixtures.js"

/** Runs `effect-auth ARGS` in process over a memory store; returns what it printed and its exit code. */
const runCli = (args: ReadonlyArray<string>, options: { readonly json?: object; readonly stdin?: string } = {}) =>
  Effect.gen(function*() {
    const out: Array<string> = []
    const err: Array<string> = []
    const exitCode = yield* Ref.make(0)
    const console: Console.Console = {
      ...(yield* Effect.console),
      log: (...parts) => Effect.sync(() => void out.push(parts.join(" "))),
      error: (...parts) => Effect.sync(() => void err.push(parts.join(" ")))
    }
    const io = Layer.succeed(Cli.CliIo, {
      stdin: Stream.make(new TextEncoder().encode(options.stdin ?? "")),
      setExitCode: (code) => Ref.set(exitCode, code)
    })
    yield* Cli.run(["node", "effect-auth", ...args]).pipe(
      Effect.withConsole(console),
      Effect.provide(Layer.mergeAll(scripted(options.json, []), NodeContext.layer, io))
    )
    return { stdout: out.join("\n"), stderr: err.join("\n"), code: yield* Ref.get(exitCode) }
  })

describe("Cli, in process", () => {
  it.effect("status of nobody exits 1", () =>
    Effect.gen(function*() {
      const result = yield* runCli(["status"])
      expect(result).toMatchObject({ code: 1, stdout: "Not signed in" })
    }))

  it.effect("login --api-key-stdin reads the key from the given input; status then exits 0", () =>
    Effect.gen(function*() {
      const result = yield* runCli(["login", "--api-key-stdin"], { stdin: `${secrets.apiKey}\n` })
      expect(result).toMatchObject({ code: 0, stdout: "Signed in with an API key" })
      expect(result.stdout).not.toContain(secrets.apiKey)
    }))

  it.effect("bad usage exits 2", () =>
    Effect.gen(function*() {
      expect((yield* runCli(["login"])).code).toBe(2)
    }))
})
