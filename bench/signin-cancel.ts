/**
 * How long canceling a browser sign-in takes while its loopback server has an
 * idle connection (a browser's preconnect: nothing sent) and a slowloris one
 * (a request line and one header, then nothing) open: `npx tsx bench/signin-cancel.ts`
 * (BENCH_CANCEL_ROUNDS, default 20). Each cancel is cut off at 15 s, so a
 * server that waits for its connections shows as 15 000 ms.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Effect, Layer, Logger, LogLevel } from "effect"
import { connect, type Socket } from "node:net"
import { loadavg } from "node:os"
import { AuthManager } from "../src/manager/AuthManager.js"
import * as OAuthProvider from "../src/oauth/OAuthProvider.js"
import { TokenRefresher } from "../src/oauth/TokenRefresher.js"
import { SignIn } from "../src/signin/SignIn.js"
import { AuthStore } from "../src/stores/AuthStore.js"

const rounds = Number(process.env.BENCH_CANCEL_ROUNDS ?? 20)

// No request reaches the issuer: a browser sign-in only builds its address.
const stack = Layer.scoped(SignIn, SignIn.make(OAuthProvider.codex({ issuer: "http://127.0.0.1:9", ports: [0] }))).pipe(
  Layer.provideMerge(
    Layer.scoped(AuthManager, AuthManager.make({})).pipe(
      Layer.provideMerge(Layer.merge(AuthStore.layerMemory(), TokenRefresher.layerTest([])))
    )
  ),
  Layer.provideMerge(NodeHttpClient.layerUndici)
)

const open = (port: number, preface: string) =>
  Effect.acquireRelease(
    Effect.async<Socket>((resume) => {
      const socket = connect(port, "127.0.0.1", () =>
        preface === "" ? resume(Effect.succeed(socket)) : socket.write(preface, () =>
          resume(Effect.succeed(socket))))
      socket.on("error", () => {})
    }),
    (socket) =>
      Effect.sync(() =>
        socket.destroy()
      )
  )

const program = Effect.gen(function*() {
  const signIn = yield* SignIn
  const times: Array<number> = []
  for (let round = 0; round < rounds; round++) {
    yield* Effect.scoped(Effect.gen(function*() {
      const login = yield* signIn.startBrowser()
      const port = Number(new URL(login.redirectUri).port)
      yield* open(port, "")
      yield* open(port, "GET /auth/callback HTTP/1.1\r\nHost: 127.0.0.1\r\n")
      const started = performance.now()
      yield* signIn.cancel(login.loginId).pipe(Effect.timeoutOption("15 seconds"))
      times.push(performance.now() - started)
    }))
  }
  const sorted = [...times].sort((a, b) => a - b)
  console.log(JSON.stringify({
    rounds,
    medianMs: Number(sorted[Math.floor(sorted.length / 2)]!.toFixed(1)),
    maxMs: Number(sorted.at(-1)!.toFixed(1)),
    load: loadavg()[0]
  }))
})

Effect.runPromise(program.pipe(Effect.provide(stack), Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Warning)))
  .then(
    () => process.exit(0),
    (error) => {
      console.error(error)
      process.exit(1)
    }
  )
