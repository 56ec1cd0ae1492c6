/** Runs CLI code in process: what it printed on stdout and stderr, and the exit code it set. */
import { type Console, Effect, Layer, Ref, Stream } from "effect"
import * as Cli from "../../src/cli/Cli.js"

export interface Captured<A> {
  readonly value: A
  readonly stdout: string
  readonly stderr: string
  readonly code: number
}

export const captureCli = <A, E, R>(
  program: Effect.Effect<A, E, R>,
  options: {
    readonly stdin?: string
    readonly terminal?: boolean
    /** Called with each text written to stderr, as it is written (to act on what a command prints while it runs). */
    readonly onStderr?: (text: string) => Effect.Effect<void>
  } = {}
): Effect.Effect<Captured<A>, E, Exclude<R, Cli.CliIo>> =>
  Effect.gen(function*() {
    const out: Array<string> = []
    const err: Array<string> = []
    const exitCode = yield* Ref.make(0)
    const console: Console.Console = {
      ...(yield* Effect.console),
      log: (...parts) => Effect.sync(() => void out.push(parts.join(" "))),
      error: (...parts) =>
        Effect.zipRight(
          Effect.sync(() => void err.push(parts.join(" "))),
          options.onStderr?.(parts.join(" ")) ?? Effect.void
        )
    }
    const io = Layer.succeed(Cli.CliIo, {
      stdin: options.stdin === undefined ? Stream.empty : Stream.make(new TextEncoder().encode(options.stdin)),
      setExitCode: (code) => Ref.set(exitCode, code),
      terminal: { stdout: options.terminal ?? false, stderr: options.terminal ?? false }
    })
    const value = yield* program.pipe(Effect.withConsole(console), Effect.provide(io))
    return { value, stdout: out.join("\n"), stderr: err.join("\n"), code: yield* Ref.get(exitCode) }
  })
