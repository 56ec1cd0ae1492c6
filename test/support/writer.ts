/**
 * Test helper process: rewrites CODEX_HOME/auth.json through the file store as
 * fast as it can, printing "ready" after the first write, until it is killed.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Effect, Option, Redacted } from "effect"
import * as AuthDocument from "../../src/AuthDocument.js"
import { AuthStore } from "../../src/AuthStore.js"

const program = Effect.gen(function*() {
  const store = yield* AuthStore
  for (let i = 0;; i++) {
    yield* store.save(AuthDocument.withTokens(Option.none(), {
      id_token: Redacted.make(`id-${i}`),
      access_token: Redacted.make(`access-${i}-${"x".repeat(4096)}`),
      refresh_token: Redacted.make(`refresh-${i}`)
    }, new Date()))
    if (i === 0) process.stdout.write("ready\n")
  }
})

Effect.runPromise(program.pipe(
  Effect.provide(AuthStore.layerFileWith({ codexHome: process.env.CODEX_HOME ?? "." })),
  Effect.provide(NodeContext.layer)
))
