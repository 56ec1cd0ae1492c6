// eslint-disable-next-line @typescript-eslint/ban-ts-comment
// @ts-nocheck: an Effect 4 program, which this repository's Effect 3 compiler (it reads test/) cannot check;
// test/install copies it into the fresh Effect 4 app without these first three lines.
// The README's complete server in its Effect 4 form (docs/editions.md): the same program, with v4's
// names (`Effect.forkChild`) and the Effect 4 edition's package. Node 22 runs it as it is (`node server.ts`).
import { AuthManager, layerNode } from "@effect-auth-manager/effect4"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect, Redacted, Schedule, Stream } from "effect"

const program = Effect.gen(function*() {
  const auth = yield* AuthManager
  // Sign-ins, sign-outs and poisonings, as they happen.
  yield* auth.changes.pipe(
    Stream.runForEach((state) => Console.log(`auth: ${state.method ?? "logged out"}, ${state.status}`)),
    Effect.forkChild
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
