/**
 * The smallest useful server: watch the credentials, and poll them as a
 * client would. `npx tsx examples/server.ts` (reads CODEX_HOME).
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect, Redacted, Schedule, Stream } from "effect"
import { AuthManager, layerNode } from "effect-auth-manager"

const program = Effect.gen(function*() {
  const auth = yield* AuthManager
  // Sign-ins, sign-outs and poisonings, as they happen.
  yield* auth.changes.pipe(
    Stream.runForEach((state) => Console.log(`auth: ${state.method ?? "logged out"}, ${state.status}`)),
    Effect.fork
  )
  // What a client poll does: it never fails; a poisoned snapshot gives authToken: null.
  const poll = Effect.gen(function*() {
    const status = yield* auth.getAuthStatus({ includeToken: true, refreshToken: true })
    // Unwrap the token only at the edge, e.g. for an Authorization header.
    const header = status.authToken === null ? null : `Bearer ${Redacted.value(status.authToken)}`
    yield* Console.log(`${status.authMethod ?? "logged out"}: ${header === null ? "no token" : "token ready"}`)
  })
  yield* poll.pipe(Effect.repeat(Schedule.spaced("5 seconds")))
})

program.pipe(Effect.provide(layerNode), NodeRuntime.runMain)
