import { describe, expect, it } from "@effect/vitest"
import { Effect, FastCheck as fc, Redacted, TestClock } from "effect"
import { AuthManager } from "../src/manager/AuthManager.js"
import { chatgptJson, tokensOf } from "./support/fixtures.js"
import { callCount, dead, down, poll, rotated, scripted, statusOf, tokenOf, writeBehind } from "./support/manager.js"
import { seeded } from "./support/properties.js"

const Step = fc.record({
  op: fc.constantFrom("poll", "poll", "poll", "login", "apikey", "logout", "reloadSame", "writeOther"),
  wait: fc.integer({ min: 0, max: 120_000 })
})
const Outcome = fc.constantFrom("ok", "dead", "down")

describe("the state machine under random sequences", () => {
  it.effect.prop(
    "no request for a poisoned snapshot, and no token handed out for one",
    [fc.array(Step, { maxLength: 40 }), fc.array(Outcome, { minLength: 1, maxLength: 10 })],
    ([steps, outcomes]) =>
      Effect.gen(function*() {
        const auth = yield* AuthManager
        let serial = 0
        for (const { op, wait } of steps) {
          const before = yield* statusOf
          const callsBefore = yield* callCount
          serial++
          switch (op) {
            case "poll": {
              const status = yield* poll()
              const after = yield* statusOf
              if (before.status === "poisoned") expect(yield* callCount).toBe(callsBefore)
              if (after.status === "poisoned") expect(status.authToken).toBeNull()
              if (after.method === "chatgpt" && after.status !== "poisoned") expect(tokenOf(status)).not.toBeNull()
              expect((yield* callCount) - callsBefore).toBeLessThanOrEqual(1)
              break
            }
            case "login":
              yield* auth.loginWithTokens(tokensOf(`login-access-${serial}`, `login-refresh-${serial}`))
              expect((yield* statusOf).status).toBe("healthy")
              break
            case "apikey":
              yield* auth.loginWithApiKey(Redacted.make(`sk-${serial}`))
              break
            case "logout":
              yield* auth.logout
              expect((yield* statusOf).status).toBe("healthy")
              break
            case "reloadSame": {
              yield* auth.reload
              expect((yield* statusOf).status).toBe(before.status)
              break
            }
            case "writeOther":
              yield* writeBehind(chatgptJson({ refreshToken: `other-refresh-${serial}` }))
              yield* auth.reload
              expect((yield* statusOf).status).toBe("healthy")
              break
          }
          yield* TestClock.adjust(wait)
        }
      }).pipe(
        Effect.provide(scripted(chatgptJson(), (call) => {
          const outcome = outcomes[call % outcomes.length]
          return outcome === "ok" ? rotated(`access-${call}`, `refresh-${call}`) : outcome === "dead" ? dead() : down()
        }))
      ),
    { fastCheck: seeded(60) }
  )
})
