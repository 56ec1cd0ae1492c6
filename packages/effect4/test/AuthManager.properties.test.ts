// The state machine under random sequences of polls, sign-ins, sign-outs, reloads and refresh
// outcomes: the invariants hold after every step. Seeded, so that every run checks the same cases.
import { describe, expect, it } from "@effect/vitest"
import { Arbitrary, Effect, Redacted, Schema } from "effect"
import { TestClock } from "effect/testing"
import { AuthManager } from "../src/manager/AuthManager.js"
import {
  callCount,
  chatgptJson,
  dead,
  down,
  idToken,
  manager,
  poll,
  rotated,
  statusOf,
  tokenOf,
  writeBehind
} from "./AuthManager.support.js"

const Step = Schema.Struct({
  op: Schema.Literals(["poll", "poll", "poll", "login", "apikey", "logout", "reloadSame", "writeOther"]),
  wait: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 120_000 }))
})
const Outcome = Schema.Literals(["ok", "dead", "down"])

const steps = Arbitrary.array(Arbitrary.schema(Step), { maxLength: 40 })
const outcomes = Arbitrary.array(Arbitrary.schema(Outcome), { minLength: 1, maxLength: 10 })

describe("the state machine under random sequences", () => {
  it.effect.prop(
    "no request for a poisoned snapshot, no token handed out for one, at most one request per poll; a change of credentials starts healthy",
    [steps, outcomes],
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
              yield* auth.loginWithTokens({
                idToken: Redacted.make(idToken),
                accessToken: Redacted.make(`login-access-${serial}`),
                refreshToken: Redacted.make(`login-refresh-${serial}`),
                accountId: "acct_123"
              })
              expect((yield* statusOf).status).toBe("healthy")
              break
            case "apikey":
              yield* auth.loginWithApiKey(Redacted.make(`sk-${serial}`))
              expect(yield* statusOf).toMatchObject({ method: "apikey", status: "healthy" })
              break
            case "logout":
              yield* auth.logout
              expect(yield* statusOf).toMatchObject({ method: null, status: "healthy" })
              break
            case "reloadSame":
              yield* auth.reload
              expect((yield* statusOf).status).toBe(before.status)
              break
            case "writeOther":
              yield* writeBehind(chatgptJson({ refreshToken: `other-refresh-${serial}` }))
              yield* auth.reload
              expect((yield* statusOf).status).toBe("healthy")
              break
          }
          yield* TestClock.adjust(wait)
        }
      }).pipe(
        Effect.provide(manager(chatgptJson(), (call) => {
          const outcome = outcomes[call % outcomes.length]
          return outcome === "ok" ? rotated(`access-${call}`, `refresh-${call}`) : outcome === "dead" ? dead() : down()
        }))
      ),
    { arbitrary: { runs: 60, seed: 20261202 } }
  )
})
