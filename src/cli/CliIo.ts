/**
 * What the commands need from the process they run in, and the console they
 * write to. Light on purpose: `effect-auth status` loads it before anything
 * else of the command line, so that a plain `status` starts fast.
 */
import { type Console, Context, Effect, Layer, Stream } from "effect"

/**
 * What the commands need from the process they run in: standard input and
 * the exit code. `layerNode` binds them to Node's `process`; tests supply
 * their own.
 */
export class CliIo extends Context.Tag("effect-auth-manager/Cli/CliIo")<CliIo, {
  readonly stdin: Stream.Stream<Uint8Array, Error>
  readonly setExitCode: (code: number) => Effect.Effect<void>
  /** Whether standard output and standard error are terminals (ANSI styling is kept only for those). */
  readonly terminal: { readonly stdout: boolean; readonly stderr: boolean }
}>() {
  static readonly layerNode: Layer.Layer<CliIo> = Layer.sync(CliIo, () => ({
    terminal: {
      stdout: process.stdout.isTTY === true && process.env.NO_COLOR === undefined,
      stderr: process.stderr.isTTY === true && process.env.NO_COLOR === undefined
    },
    stdin: Stream.suspend(() =>
      Stream.fromAsyncIterable(process.stdin, (cause) => new Error(`could not read standard input: ${String(cause)}`))
    ),
    setExitCode: (code) => Effect.sync(() => (process.exitCode = code))
  }))
}

export const setExitCode = (code: number) => Effect.flatMap(CliIo, (io) => io.setExitCode(code))

const ansiEscape = /\u001b\[[0-9;]*[A-Za-z]/g
const plain = (parts: ReadonlyArray<unknown>) =>
  parts.map((part) => (typeof part === "string" ? part.replace(ansiEscape, "") : part))

/** The console, without ANSI styling on an output that is not a terminal. */
export const consoleFor = (terminal: { readonly stdout: boolean; readonly stderr: boolean }) =>
  Effect.map(Effect.console, (console): Console.Console => ({
    ...console,
    log: (...parts) => terminal.stdout ? console.log(...parts) : console.log(...plain(parts)),
    error: (...parts) => terminal.stderr ? console.error(...parts) : console.error(...plain(parts))
  }))

/** Runs `effect` with the console of the process's outputs (see `consoleFor`). */
export const withProcessConsole = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(
    CliIo,
    (io) => Effect.flatMap(consoleFor(io.terminal), (console) => Effect.withConsole(effect, console))
  )
