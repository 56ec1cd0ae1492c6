import * as Shared from "@effect-auth-manager/core/sharedHealth"
import { describe, expect, it } from "vitest"

interface Types extends Shared.SharedTypes {
  readonly Snapshot: { readonly hash: string; readonly method: null; readonly claims: never }
  readonly Permanent: { readonly reason: "reused"; readonly status?: number }
  readonly Transient: { readonly kind: "status" | "timeout"; readonly status?: number; readonly detail: string }
}

describe("sharedHealth", () => {
  it("shares codes and times only, nothing when healthy", () => {
    expect(Shared.sharedOf<Types>("h", { _tag: "Healthy" }, 5)).toBeUndefined()
    expect(Shared.sharedOf<Types>("h", { _tag: "Poisoned", error: { reason: "reused", status: 400 } }, 5)).toEqual({
      hash: "h",
      state: "poisoned",
      reason: "reused",
      status: 400,
      at: 5
    })
    const cooling = Shared.sharedOf<Types>("h", {
      _tag: "CoolingDown",
      until: 9,
      attempts: 2,
      error: { kind: "timeout", detail: "server words rt-SECRET" }
    }, 5)
    expect(cooling).toEqual({ hash: "h", state: "cooling-down", until: 9, attempts: 2, kind: "timeout", at: 5 })
    expect(Shared.encodeSharedHealth(cooling!)).not.toContain("SECRET")
  })

  it("what another process recorded applies to its snapshot only, as facts with a detail in codes", () => {
    const poisoned: Shared.SharedHealth = { hash: "h", state: "poisoned", reason: "expired", at: 1 }
    expect(Shared.sharedFacts(poisoned, "other")).toBeUndefined()
    expect(Shared.sharedFacts(poisoned, "h")).toEqual({ _tag: "Poisoned", reason: "expired" })
    expect(
      Shared.sharedFacts({
        hash: "h",
        state: "cooling-down",
        until: 9,
        attempts: 3,
        kind: "status",
        status: 503,
        at: 1
      }, "h")
    )
      .toEqual({
        _tag: "CoolingDown",
        until: 9,
        attempts: 3,
        kind: "status",
        detail: "another process's refresh failed (status, HTTP 503)",
        status: 503
      })
  })

  it("reads a record whole, or not at all", () => {
    const records: ReadonlyArray<Shared.SharedHealth> = [
      { hash: "h", state: "poisoned", reason: "reused", status: 400, at: 1 },
      { hash: "h", state: "cooling-down", until: 9, attempts: 2, kind: "timeout", detail: "old text", at: 1 }
    ]
    for (const record of records) expect(Shared.decodeSharedHealth(Shared.encodeSharedHealth(record))).toEqual(record)
    for (
      const bad of [
        "{",
        "[]",
        JSON.stringify({ hash: "h", state: "poisoned", reason: "bored", at: 1 }),
        JSON.stringify({ hash: "h", state: "poisoned", reason: "reused" }),
        JSON.stringify({ hash: "h", state: "cooling-down", until: 9, attempts: 2, kind: "weather", at: 1 }),
        JSON.stringify({ hash: "h", state: "cooling-down", until: "9", attempts: 2, kind: "status", at: 1 }),
        JSON.stringify({ hash: "h", state: "sleeping", at: 1 }),
        JSON.stringify({ hash: 5, state: "poisoned", reason: "reused", at: 1 }),
        JSON.stringify({ hash: "h", state: "poisoned", reason: "reused", status: "400", at: 1 })
      ]
    ) {
      expect(Shared.decodeSharedHealth(bad), bad).toBeUndefined()
    }
  })
})
