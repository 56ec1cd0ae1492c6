import * as Doc from "@effect-auth-manager/core/authDocument"
import * as Machine from "@effect-auth-manager/core/refreshState"
import { describe, expect, it } from "vitest"
import { chatgptJson, secrets } from "./support/fixtures.js"

// The machine over plain values: secrets as strings, errors as records, milliseconds for settings.
interface Snapshot extends Doc.Summary {
  readonly document: Doc.AuthDocument | undefined
}
interface Transient {
  readonly detail: string
  readonly retryAfter?: number
}
interface Types {
  readonly Snapshot: Snapshot
  readonly Secret: string
  readonly Flight: { readonly hash: string; readonly id: number }
  readonly Pending: Doc.PendingRefresh
  readonly Permanent: { readonly reason: "reused" | "invalid_grant" }
  readonly Transient: Transient
  readonly Settings: Machine.Timing
}

const timing: Machine.Timing = {
  refreshWindow: 5 * 60_000,
  minRefreshInterval: 30_000,
  staleAfter: 8 * 86_400_000,
  backoffBase: 1_000,
  backoffCap: 5 * 60_000,
  maxRetryAfter: 3_600_000
}
const snapshotOf = (document: Doc.AuthDocument): Snapshot => ({ document, ...Doc.summarize(document) })
const read = (json: object) => {
  const decoded = Doc.decode(json)
  if (decoded._tag === "Invalid") throw new Error(decoded.error.detail)
  return snapshotOf(decoded.document)
}
const machine = Machine.make<Types>({
  timing: (settings) => settings,
  lastRefreshAt: (snapshot) => snapshot.lastRefreshAt,
  accessTokenExpiresAt: (snapshot) => snapshot.accessTokenExpiresAt,
  document: (snapshot) => snapshot.document,
  reveal: (secret) => secret,
  applied: (document, pending) => snapshotOf(Doc.applyRefresh(document, pending.tokens, new Date(pending.at))),
  coolingDown: (error, retryAfter) => ({
    detail: `waiting before the next attempt, after: ${error.detail}`,
    retryAfter
  }),
  retryAfter: (error) => error.retryAfter
})

const withRefreshToken = (refreshToken: string, extra: object = {}) => {
  const json = chatgptJson({ extra }) as { tokens: Record<string, unknown> }
  return read({ ...json, tokens: { ...json.tokens, refresh_token: refreshToken } })
}
const current = withRefreshToken("rt-current")
const other = withRefreshToken("rt-other")
const now = 1_000_000
const poisoned: Machine.Health<Types> = { _tag: "Poisoned", error: { reason: "reused" } }
const coolingDown = (until: number): Machine.Health<Types> => ({
  _tag: "CoolingDown",
  until,
  attempts: 1,
  error: { detail: "HTTP 503" }
})

describe("refreshState.decide: before any I/O", () => {
  it("skips what is not ChatGPT, and a snapshot refreshed within the minimum interval", () => {
    expect(machine.decide(machine.initial(read({ OPENAI_API_KEY: "k" })), now, timing)._tag).toBe("Skip")
    const fresh = read(chatgptJson({ now }))
    const justRefreshed = { ...fresh, lastRefreshAt: now - 1_000 }
    expect(machine.decide(machine.initial(justRefreshed), now, timing)._tag).toBe("Skip")
    expect(machine.decide(machine.initial({ ...fresh, lastRefreshAt: now - 30_000 }), now, timing)._tag).toBe("Start")
    // A last refresh in the future (clock skew) does not hold refreshes back.
    expect(machine.decide(machine.initial({ ...fresh, lastRefreshAt: now + 1 }), now, timing)._tag).toBe("Start")
  })

  it("a poisoned snapshot fails fast; a cooling-down one with the time left; a flight of the same snapshot is joined", () => {
    const state = machine.initial(current)
    expect(machine.decide({ ...state, health: poisoned }, now, timing)).toEqual({
      _tag: "Poisoned",
      error: poisoned.error
    })
    expect(machine.decide({ ...state, health: coolingDown(now + 2_500) }, now, timing)).toEqual({
      _tag: "CoolingDown",
      error: { detail: "waiting before the next attempt, after: HTTP 503", retryAfter: 2_500 }
    })
    expect(machine.decide({ ...state, health: coolingDown(now) }, now, timing)._tag).toBe("Start")
    const flight = { hash: current.hash, id: 1 }
    expect(machine.decide({ ...state, inflight: flight }, now, timing)).toEqual({ _tag: "Join", flight })
    expect(machine.decide({ ...state, inflight: { hash: "older", id: 2 } }, now, timing)._tag).toBe("Start")
  })
})

describe("refreshState.staleAt", () => {
  it("the access token's exp less the window; else last_refresh plus staleAfter; never for a key", () => {
    const expiring = read(chatgptJson({ now, expiresIn: 60 * 60_000 }))
    expect(machine.staleAt(expiring, timing)).toBe(now + 55 * 60_000)
    expect(machine.isStale(expiring, now + 55 * 60_000 - 1, timing)).toBe(false)
    expect(machine.isStale(expiring, now + 55 * 60_000, timing)).toBe(true)
    const opaque = read(chatgptJson({ accessToken: "opaque" }))
    expect(machine.staleAt(opaque, timing)).toBe(opaque.lastRefreshAt! + timing.staleAfter + 1)
    expect(machine.staleAt({ ...opaque, lastRefreshAt: undefined }, timing)).toBe(-Infinity)
    expect(machine.staleAt(read({ OPENAI_API_KEY: "k" }), timing)).toBe(Infinity)
  })
})

describe("refreshState.plan: after the lock and the read", () => {
  const planOf = (read: Partial<Parameters<typeof machine.plan>[1]>, state = machine.initial(current)) =>
    machine.plan(state, { current, base: current.hash, stored: current, known: undefined, ...read }, now, timing)

  it("storage holds other credentials: adopted, nothing sent, even when another process recorded a death", () => {
    expect(planOf({ stored: other })).toEqual({ _tag: "Adopt", snapshot: other })
    expect(planOf({ stored: other, known: poisoned })._tag).toBe("Adopt")
  })

  it("what another process learned answers, with the time left of a backoff", () => {
    expect(planOf({ known: poisoned })).toEqual({ _tag: "Known", health: poisoned, error: poisoned.error })
    expect(planOf({ known: coolingDown(now + 5_000) })).toMatchObject({ _tag: "Known", error: { retryAfter: 5_000 } })
  })

  it("otherwise the request, with the snapshot's refresh token and an ended backoff kept as health", () => {
    expect(planOf({})).toMatchObject({ _tag: "Request", refreshToken: "rt-current", health: undefined })
    expect(planOf({ known: coolingDown(now - 1) })).toMatchObject({ _tag: "Request", health: coolingDown(now - 1) })
    const apiKey = read({ OPENAI_API_KEY: "k" })
    expect(
      machine.plan(
        machine.initial(apiKey),
        { current: apiKey, base: apiKey.hash, stored: apiKey, known: undefined },
        now,
        timing
      )
    )
      .toEqual({ _tag: "Nothing" })
  })
})

describe("refreshState: reconcile and unsaved tokens", () => {
  const pending: Doc.PendingRefresh = {
    tokens: { accessToken: "a2", refreshToken: "r2" },
    replaced: "rt-current",
    at: now
  }
  const refreshed = withRefreshToken("r2")
  const rewritten = withRefreshToken("rt-current", { note: "rewritten" })
  const unsavedState = machine.adoptUnsaved(refreshed, current.hash, pending)(machine.initial(current))

  it("reconcile: reapplied onto storage still holding the sent token, else adopted", () => {
    expect(machine.reconcile(rewritten, "rt-current")).toEqual({ _tag: "Reapply", onto: rewritten.document })
    expect(machine.reconcile(other, "rt-current")).toEqual({ _tag: "Adopt" })
    expect(machine.reconcile(read({ OPENAI_API_KEY: "k" }), "rt-current")).toEqual({ _tag: "Adopt" })
    expect(machine.deathApplies(undefined, current.hash)).toBe(true)
    expect(machine.deathApplies(current, current.hash)).toBe(true)
    expect(machine.deathApplies(other, current.hash)).toBe(false)
  })

  it("storage rewritten, still holding the replaced token: the new tokens stay, applied onto it, unsaved", () => {
    expect(Machine.unsaved(unsavedState)).toBe(true)
    expect(machine.adopt(current)(unsavedState)).toBe(unsavedState)
    const next = machine.adopt(rewritten)(unsavedState)
    expect(next.snapshot.document?.tokens).toMatchObject({ access_token: "a2", refresh_token: "r2" })
    expect(Doc.toText(next.snapshot.document!)).toMatch(/"note": ?"rewritten"/)
    expect(next.stored).toBe(rewritten.hash)
    expect(Machine.unsaved(next)).toBe(true)
  })

  it("storage holding another refresh token is newer: adopted, the unsaved refresh dropped", () => {
    const next = machine.adopt(other)(unsavedState)
    expect(next.snapshot).toBe(other)
    expect(next.pending).toBeUndefined()
    expect(Machine.unsaved(next)).toBe(false)
    const signedIn = machine.adopt(other)(machine.initial(current))
    expect(machine.adoptUnsaved(refreshed, current.hash, pending)(signedIn)).toBe(signedIn)
  })

  it("a kept refresh resumes only while storage holds the token it replaced; a save makes it current", () => {
    const resumed = machine.resume(current, pending)!
    expect(resumed.snapshot.document?.tokens?.refresh_token).toBe("r2")
    expect(resumed.stored).toBe(current.hash)
    expect(machine.resume(other, pending)).toBeUndefined()
    const flight = { hash: current.hash, id: 3 }
    expect(machine.adoptKept(current, pending)({ ...machine.initial(current), inflight: flight }).inflight).toBe(flight)
    const saved = machine.adoptSaved(resumed.snapshot)(resumed)
    expect([saved.stored, saved.pending]).toEqual([resumed.snapshot.hash, undefined])
    expect(machine.endFlight(flight)({ ...saved, inflight: flight }).inflight).toBeUndefined()
    expect(machine.endFlight({ ...flight })({ ...saved, inflight: flight }).inflight).toBe(flight)
  })
})

describe("refreshState: health, backoff, what clients see", () => {
  it("the backoff: the base for ten failures, then a fifth more each time, spread over a tenth, capped", () => {
    expect([1, 10, 11, 12].map((n) => Machine.backoffCeiling(n, timing))).toEqual([1_000, 1_000, 1_200, 1_440])
    expect(Machine.backoffCeiling(100, timing)).toBe(timing.backoffCap)
    expect(Machine.backoffDelay(1, 0.999, undefined, timing)).toBe(1_099)
    expect(Machine.backoffDelay(100, 0.5, undefined, timing)).toBe(timing.backoffCap)
    expect(Machine.backoffDelay(1, 0, 30_000, timing)).toBe(30_000)
    expect(Machine.backoffDelay(1, 0, 10 * 3_600_000, timing)).toBe(timing.maxRetryAfter)
  })

  it("coolDown counts failures of the current snapshot only; withHealth ignores an old snapshot", () => {
    const state = machine.initial(current)
    const once = machine.coolDown(current.hash, { detail: "HTTP 503" }, now, 0, timing)(state)
    expect(once.health).toMatchObject({ _tag: "CoolingDown", until: now + 1_000, attempts: 1 })
    const twice = machine.coolDown(current.hash, { detail: "HTTP 503", retryAfter: 20_000 }, now, 0, timing)(once)
    expect(twice.health).toMatchObject({ attempts: 2, until: now + 20_000 })
    expect(machine.coolDown("old", { detail: "x" }, now, 0, timing)(state)).toBe(state)
    expect(machine.withHealth("old", poisoned)(state)).toBe(state)
  })

  it("the view holds no secret; the status gives the token only when asked, never a poisoned one", () => {
    const state = machine.initial(current)
    expect(machine.view({ ...state, health: poisoned })).toEqual({
      hash: current.hash,
      method: "chatgpt",
      email: "ada@example.com",
      planType: "plus",
      status: "poisoned",
      reason: "reused",
      retryAt: null,
      lastRefreshAt: current.lastRefreshAt
    })
    expect(machine.view({ ...state, health: coolingDown(5) })).toMatchObject({ status: "cooling-down", retryAt: 5 })
    expect(Machine.sameView(machine.view(state), machine.view(state))).toBe(true)
    expect(Machine.sameView(machine.view(state), machine.view({ ...state, health: poisoned }))).toBe(false)
    expect(machine.statusOf(state, true)).toEqual({
      authMethod: "chatgpt",
      authToken: secrets.access,
      requiresOpenaiAuth: true
    })
    expect(machine.statusOf(state, false).authToken).toBeNull()
    expect(machine.statusOf({ ...state, health: poisoned }, true).authToken).toBeNull()
    const key = machine.initial(read({ OPENAI_API_KEY: "sk-1" }))
    expect(machine.statusOf(key, true)).toEqual({ authMethod: "apikey", authToken: "sk-1", requiresOpenaiAuth: true })
    expect(machine.statusOf(machine.initial(read({})), true).authMethod).toBeNull()
  })

  it("what a request carries: the key, or the access token of credentials not poisoned, and why not", () => {
    const state = machine.initial(current)
    expect(machine.credentialsOf(state)).toEqual({
      _tag: "Credentials",
      method: "chatgpt",
      token: secrets.access,
      accountId: "acct_123"
    })
    expect(machine.holds(state, secrets.access)).toBe(true)
    expect(machine.holds(state, "an older token")).toBe(false)
    expect(machine.credentialsOf({ ...state, health: poisoned })).toEqual({ _tag: "Poisoned", reason: "reused" })
    expect(machine.tokenOf({ ...state, health: poisoned })).toBeUndefined()
    expect(machine.holds({ ...state, health: poisoned }, secrets.access)).toBe(false)
    expect(machine.tokenOf({ ...state, health: coolingDown(now + 1) })).toBe(secrets.access)
    expect(machine.credentialsOf(machine.initial(read({ OPENAI_API_KEY: "sk-1" })))).toEqual({
      _tag: "Credentials",
      method: "apikey",
      token: "sk-1",
      accountId: null
    })
    expect(machine.credentialsOf(machine.initial(read({})))).toEqual({ _tag: "LoggedOut" })
  })
})
