// The pure steps of a refresh between its I/O (src/manager/RefreshState.ts): what it does once it
// holds the lock and has read storage (`plan`), and what it does when its compare-and-set finds
// storage changed (`reconcile`).
import { describe, expect, it } from "@effect/vitest"
import { Duration, Either, Option, Redacted } from "effect"
import { defaultSettings } from "../src/config/Settings.js"
import * as AuthDocument from "../src/document/AuthDocument.js"
import { PermanentRefreshError, TransientRefreshError } from "../src/errors/Errors.js"
import * as RefreshState from "../src/manager/RefreshState.js"
import { apiKeyJson, chatgptJson } from "./support/fixtures.js"

const snapshotOf = (json: object) => Either.getOrThrow(AuthDocument.parse(JSON.stringify(json)))
const current = snapshotOf(chatgptJson({ refreshToken: "rt-current" }))
const other = snapshotOf(chatgptJson({ refreshToken: "rt-other" }))
const now = 1_000_000
const poisoned: RefreshState.Health = { _tag: "Poisoned", error: new PermanentRefreshError({ reason: "reused" }) }
const coolingDown = (until: number): RefreshState.Health => ({
  _tag: "CoolingDown",
  until,
  attempts: 1,
  error: new TransientRefreshError({ kind: "status", status: 503, detail: "HTTP 503" })
})
const planOf = (read: Partial<Parameters<typeof RefreshState.plan>[1]>, state = RefreshState.initial(current)) =>
  RefreshState.plan(
    state,
    { current, base: current.hash, stored: current, known: undefined, ...read },
    now,
    defaultSettings
  )

describe("RefreshState.plan: after the lock and the read", () => {
  it("storage holds other credentials: they are adopted, and nothing is sent", () => {
    expect(planOf({ stored: other })).toEqual({ _tag: "Adopt", snapshot: other })
    // Even when another process recorded this snapshot as dead: what storage holds now is newer.
    expect(planOf({ stored: other, known: poisoned })._tag).toBe("Adopt")
  })

  it("another process learned this snapshot is dead: answered from its record, nothing sent", () => {
    const next = planOf({ known: poisoned })
    expect(next).toMatchObject({ _tag: "Known", health: poisoned })
    expect(next._tag === "Known" && next.error._tag).toBe("PermanentRefreshError")
  })

  it("another process is backing off: answered with the time left, nothing sent", () => {
    const next = planOf({ known: coolingDown(now + 5_000) })
    expect(next._tag).toBe("Known")
    const error = next._tag === "Known" ? next.error : undefined
    expect(error?._tag === "TransientRefreshError" && Duration.toMillis(error.retryAfter!)).toBe(5_000)
  })

  it("a backoff that has ended no longer holds the request back; it is kept as the state's health", () => {
    const next = planOf({ known: coolingDown(now - 1) })
    expect(next._tag).toBe("Request")
    expect(next._tag === "Request" && next.health !== undefined).toBe(true)
  })

  it("otherwise the request sends the refresh token of the snapshot being refreshed", () => {
    const next = planOf({})
    expect(next._tag).toBe("Request")
    expect(next._tag === "Request" && Redacted.value(next.refreshToken)).toBe("rt-current")
  })

  it("unsaved tokens: storage still holding the base is not news, and their refresh token is sent", () => {
    const unsaved = snapshotOf(chatgptJson({ refreshToken: "rt-unsaved" }))
    const next = RefreshState.plan(
      RefreshState.adoptUnsaved(unsaved, current.hash, { tokens: {}, replaced: Redacted.make("rt-current"), at: now })(
        RefreshState.initial(current)
      ),
      { current: unsaved, base: current.hash, stored: current, known: undefined },
      now,
      defaultSettings
    )
    expect(next._tag === "Request" && Redacted.value(next.refreshToken)).toBe("rt-unsaved")
  })

  it("nothing to send without a refresh token", () => {
    const apiKey = snapshotOf(apiKeyJson())
    expect(
      RefreshState.plan(
        RefreshState.initial(apiKey),
        { current: apiKey, base: apiKey.hash, stored: apiKey, known: undefined },
        now,
        defaultSettings
      )
    )
      .toEqual({ _tag: "Nothing" })
  })
})

describe("RefreshState.reconcile: the compare-and-set found storage changed", () => {
  const sent = Redacted.make("rt-current")

  it("storage still holds the refresh token that was sent: the refresh is applied onto it", () => {
    const rewritten = snapshotOf(
      chatgptJson({ refreshToken: "rt-current", extra: { note: "rewritten by another program" } })
    )
    const next = RefreshState.reconcile(rewritten, sent)
    expect(next._tag).toBe("Reapply")
    expect(next._tag === "Reapply" && next.onto).toEqual(Option.getOrThrow(rewritten.document))
  })

  it("storage holds another refresh token, or none: what it holds is adopted", () => {
    expect(RefreshState.reconcile(other, sent)).toEqual({ _tag: "Adopt" })
    expect(RefreshState.reconcile(AuthDocument.absent, sent)).toEqual({ _tag: "Adopt" })
    expect(RefreshState.reconcile(snapshotOf(apiKeyJson()), sent)).toEqual({ _tag: "Adopt" })
  })
})

describe("RefreshState.deathApplies", () => {
  it("a dead refresh token is recorded only if storage still holds what was refreshed, or cannot be read", () => {
    expect(RefreshState.deathApplies(current, current.hash)).toBe(true)
    expect(RefreshState.deathApplies(undefined, current.hash)).toBe(true)
    expect(RefreshState.deathApplies(other, current.hash)).toBe(false)
  })
})

describe("unsaved refreshed tokens when storage changes (RefreshState.adopt, adoptUnsaved)", () => {
  const pending: RefreshState.Pending = {
    tokens: { accessToken: Redacted.make("a2"), refreshToken: Redacted.make("r2") },
    replaced: Redacted.make("rt-current"),
    at: now
  }
  const refreshed = snapshotOf(chatgptJson({ refreshToken: "r2", accessToken: "a2" }))
  const rewritten = snapshotOf(chatgptJson({ refreshToken: "rt-current", extra: { note: "rewritten" } }))
  const refreshTokenOf = (state: RefreshState.State) => Option.getOrThrow(state.snapshot.document).tokens?.refresh_token
  const unsavedState = RefreshState.adoptUnsaved(refreshed, current.hash, pending)(RefreshState.initial(current))

  it("storage rewritten by another program, still holding the replaced refresh token: the new tokens stay, applied onto it", () => {
    const next = RefreshState.adopt(rewritten)(unsavedState)
    expect(Redacted.value(refreshTokenOf(next)!)).toBe("r2")
    expect(next.stored).toBe(rewritten.hash)
    expect(RefreshState.unsaved(next)).toBe(true)
    expect(AuthDocument.toText(Option.getOrThrow(next.snapshot.document))).toMatch(/"note": ?"rewritten"/)
  })

  it("storage holding another refresh token (a sign-in, another process's refresh) is newer: adopted", () => {
    const next = RefreshState.adopt(other)(unsavedState)
    expect(next.snapshot).toBe(other)
    expect(RefreshState.unsaved(next)).toBe(false)
    expect(next.pending).toBeUndefined()
  })

  it("the state already moved to a rewrite during the request: the refresh applies onto it, or gives way to newer credentials", () => {
    const moved = RefreshState.adopt(rewritten)(RefreshState.initial(current))
    const kept = RefreshState.adoptUnsaved(refreshed, current.hash, pending)(moved)
    expect(Redacted.value(refreshTokenOf(kept)!)).toBe("r2")
    expect(kept.stored).toBe(rewritten.hash)
    const signedIn = RefreshState.adopt(other)(RefreshState.initial(current))
    expect(RefreshState.adoptUnsaved(refreshed, current.hash, pending)(signedIn)).toBe(signedIn)
  })
})
