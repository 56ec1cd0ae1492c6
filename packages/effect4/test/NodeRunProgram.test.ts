import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { describe, expect, it } from "@effect/vitest"
import { Effect, FileSystem } from "effect"
import { execFile } from "node:child_process"
import { fileURLToPath } from "node:url"

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url))
const repositoryRoot = here("../../..")

/** A program that runs through `runProgram` as a user's would: a log line, a line of its own output, a failure. */
const program = `
import { Effect } from ${JSON.stringify(here("../node_modules/effect/dist/index.js"))}
import { runProgram } from ${JSON.stringify(here("../src/node/runProgram.ts"))}
import { layerStderrLogger } from ${JSON.stringify(here("../src/node/StderrLogger.ts"))}
runProgram(Effect.gen(function*() {
  yield* Effect.logInfo("hello from the program")
  console.log("the program's own output")
  return yield* Effect.fail(new Error("it broke"))
}), { logger: layerStderrLogger })
`

/** Runs the program in a process of its own (TypeScript through tsx), with `env` added. */
const run = (env: Record<string, string>) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const file = `${yield* fs.makeTempDirectoryScoped()}/program.ts`
    yield* fs.writeFileString(file, program)
    return yield* Effect.callback<{ readonly code: number; readonly stdout: string; readonly stderr: string }>(
      (resume) => {
        const child = execFile(
          process.execPath,
          ["--import", "tsx", file],
          { cwd: repositoryRoot, env: { ...process.env, ...env }, timeout: 60_000 },
          (error, stdout, stderr) =>
            resume(Effect.succeed({ code: error === null ? 0 : Number(error.code ?? 1), stdout, stderr }))
        )
        return Effect.sync(() => child.kill())
      }
    )
  }).pipe(Effect.provide(NodeFileSystem.layer))

describe("runProgram", () => {
  // Each case is a process of its own (TypeScript compiled on the fly): a few seconds each.
  it.live("logs, and the failure's report, go to stderr through the program's logger; stdout is the program's", () =>
    Effect.gen(function*() {
      const result = yield* run({})
      expect(result.code).toBe(1)
      expect(result.stdout).toBe("the program's own output\n")
      expect(result.stderr).toMatch(/level=INFO .*message="hello from the program"/)
      expect(result.stderr).toMatch(/level=ERROR .*it broke/)
    }))

  it.live("a setting that cannot work is said in one line at start, and exits 1", () =>
    Effect.gen(function*() {
      const result = yield* run({ EFFECT_AUTH_LOG_LEVEL: "loud" })
      expect(result.code).toBe(1)
      expect(result.stdout).toBe("")
      expect(result.stderr.trim()).toBe(
        "Configuration error: EFFECT_AUTH_LOG_LEVEL: Expected one of All, Fatal, Error, Warn, Info, Debug, Trace, None (any case) but received \"loud\""
      )
    }))
})
