/**
 * A Codex-compatible app server for the auth methods, on stdio:
 * `npx tsx bin/app-server.ts`
 * Reads CODEX_HOME and CODEX_REFRESH_TOKEN_URL_OVERRIDE.
 * stdout carries protocol lines only; logs go to stderr.
 */
import * as NodePath from "@effect/platform-node/NodePath"
import * as NodeStream from "@effect/platform-node/NodeStream"
import * as Path from "@effect/platform/Path"
import { Effect, Layer, Stream } from "effect"
import { AppServer } from "../src/app-server/index.js"
import { Configuration } from "../src/config/Configuration.js"
import { runProgram } from "../src/node/runProgram.js"
import { layerStderrLogger } from "../src/node/StderrLogger.js"

const platformOs = process.platform === "darwin" ? "macos" : process.platform === "win32" ? "windows" : process.platform

// Completes once Node has handed the line to the pipe: a client that does not read its answers
// stops the server reading its requests, instead of growing its memory.
const writeLine = (line: string) =>
  Effect.async<void>((resume) => {
    process.stdout.write(`${line}\n`, () => resume(Effect.void))
  })

// A request line longer than this (4 MiB) is refused, and never held in memory.
const maxLineLength = 4 * 1024 * 1024

const stdinLines = NodeStream.fromReadable<Error, Uint8Array>(
  () => process.stdin,
  (cause) => new Error(`stdin failed: ${String(cause)}`)
).pipe(Stream.decodeText(), AppServer.splitLines(maxLineLength))

// The manager (it reads auth.json and starts the watch) and the sign-ins: loaded and built while the
// client's `initialize` is read and answered, which needs none of them.
const services = Layer.unwrapEffect(
  Effect.promise(() => import("./app-server-services.js")).pipe(Effect.map((module) => module.services))
)

const program = Effect.gen(function*() {
  const path = yield* Path.Path
  const info = {
    codexHome: path.resolve((yield* Configuration).codexHome),
    version: "0.1.0",
    platformOs,
    platformFamily: process.platform === "win32" ? "windows" : "unix"
  } as const
  yield* AppServer.serveWhileStarting(stdinLines, writeLine, info, Layer.build(services))
})

// Logs go to stderr (stdout is the protocol's). A setting that cannot work (a token URL that is not
// http(s), a bad duration) stops the server at start, said in one line: better than a server that
// fails every refresh.
runProgram(program.pipe(Effect.scoped, Effect.provide(NodePath.layer)), { logger: layerStderrLogger })
