/**
 * Test helper process: rewrites CODEX_HOME/auth.json through the file store as
 * fast as it can, printing "ready" after the first write, until it is killed.
 * With `--once` it exits after that first write (the e2e global setup runs it so,
 * which leaves V8's code cache of the bundle for the writers that are killed).
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { Effect, Layer, Option, Redacted } from "effect"
import * as AuthDocument from "../../src/document/AuthDocument.js"
import { AuthStore } from "../../src/stores/AuthStore.js"

const program = Effect.gen(function*() {
  const store = yield* AuthStore
  for (let i = 0;; i++) {
    yield* store.save(AuthDocument.withTokens(Option.none(), {
      id_token: Redacted.make(`id-${i}`),
      access_token: Redacted.make(`access-${i}-${"x".repeat(4096)}`),
      refresh_token: Redacted.make(`refresh-${i}`)
    }, new Date()))
    if (i === 0) {
      process.stdout.write("ready\n")
      if (process.argv.includes("--once")) return
    }
  }
})

Effect.runPromise(program.pipe(
  Effect.provide(Layer.effect(AuthStore, AuthStore.makeFile({ codexHome: process.env.CODEX_HOME ?? "." }))),
  Effect.provide(Layer.merge(NodeFileSystem.layer, NodePath.layer))
))
