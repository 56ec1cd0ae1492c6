import { describe, expect, it } from "@effect/vitest"
import { Console, Effect, Layer } from "effect"
import { Configuration, type Input } from "../src/config/Configuration.js"
import { layerCliLogger, layerStderrLogger } from "../src/node/StderrLogger.js"

/** A console that records what goes to stdout (`log`) and to stderr (`error`). */
const recordingConsole = () => {
  const lines = { stdout: [] as Array<string>, stderr: [] as Array<string> }
  const console: Console.Console = {
    ...globalThis.console,
    log: (...args: ReadonlyArray<unknown>) => void lines.stdout.push(args.map(String).join(" ")),
    error: (...args: ReadonlyArray<unknown>) => void lines.stderr.push(args.map(String).join(" "))
  }
  return { lines, console }
}

const logAll = Effect.gen(function*() {
  yield* Effect.logDebug("debug line")
  yield* Effect.logInfo("info line")
  yield* Effect.logWarning("warning line")
})

const run = (logger: Layer.Layer<never, never, Configuration>, configuration: Input) =>
  Effect.gen(function*() {
    const { console, lines } = recordingConsole()
    yield* logAll.pipe(
      Effect.provide(logger.pipe(Layer.provide(Configuration.layer(configuration)))),
      Effect.provideService(Console.Console, console)
    )
    return lines
  })

describe("the programs' loggers", () => {
  it.effect("layerStderrLogger: logfmt on stderr, from Info, nothing on stdout", () =>
    Effect.gen(function*() {
      const lines = yield* run(layerStderrLogger, {})
      expect(lines.stdout).toEqual([])
      expect(lines.stderr.length).toBe(2)
      expect(lines.stderr[0]).toMatch(/level=INFO .*message="info line"/)
      expect(lines.stderr[1]).toMatch(/level=WARN .*message="warning line"/)
    }))

  it.effect("layerCliLogger: warnings only, unless the configured level says more", () =>
    Effect.gen(function*() {
      const quiet = yield* run(layerCliLogger, {})
      expect(quiet.stderr.map((line) => /message="([^"]+)"/.exec(line)?.[1])).toEqual(["warning line"])
      const verbose = yield* run(layerCliLogger, { logLevel: "Debug" })
      expect(verbose.stderr.map((line) => /message="([^"]+)"/.exec(line)?.[1])).toEqual([
        "debug line",
        "info line",
        "warning line"
      ])
      expect(verbose.stdout).toEqual([])
    }))
})
