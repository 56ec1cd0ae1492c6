import * as Messages from "@effect-auth-manager/core/messages"
import { describe, expect, it } from "vitest"

describe("messages", () => {
  it("durations as Effect's Duration.format writes them", () => {
    expect(
      [0, 250, 1_000, 90_000, 3_600_000 + 1_500, 86_400_000 * 2 + 60_000, 0.5, Infinity].map(Messages.formatMillis)
    )
      .toEqual(["0", "250ms", "1s", "1m 30s", "1h 1s 500ms", "2d 1m", "500000ns", "Infinity"])
  })

  it("a dead refresh token says what to do, for every reason", () => {
    for (const reason of Messages.permanentReasons) {
      expect(Messages.permanentMessage(reason)).toMatch(/^Your access token could not be refreshed because .+\.$/)
    }
    expect(Messages.permanentMessage("invalid_client")).toContain("Check the configured client id and client secret")
    expect(Messages.credentialsUnavailableMessage({ reason: "poisoned", refreshReason: "reused" })).toBe(
      "The saved credentials can no longer be used: the access token could not be refreshed because your refresh " +
        "token was already used. Please log out and sign in again."
    )
    expect(Messages.credentialsUnavailableMessage({ reason: "logged_out" })).toContain("nobody is signed in")
  })

  it("a transient failure says the token is still used, and the server's wait", () => {
    expect(Messages.transientMessage({ kind: "status", detail: "HTTP 503", retryAfter: 30_000 })).toBe(
      "Your access token could not be refreshed right now: HTTP 503 (the server asked to wait 30s). " +
        "The current token is still used, and the refresh will be retried after a backoff."
    )
    expect(Messages.transientMessage({ kind: "client", detail: "the app did not answer" })).toBe(
      "Your access token could not be refreshed: the app did not answer. The app that supplied it must supply new tokens."
    )
  })

  it("a store's failure gives the advice of its kind of store", () => {
    const base = { problem: "EACCES" } as const
    expect(Messages.authStoreMessage({ ...base, path: "/h/auth.json", operation: "write" })).toBe(
      "Could not write the credentials in /h/auth.json: EACCES. Check that the folder exists and that this user may write to it."
    )
    expect(Messages.authStoreMessage({ ...base, path: "/h/auth.json", operation: "read" })).toContain("left untouched")
    expect(Messages.authStoreMessage({ ...base, path: "/h/auth.json", operation: "lock" })).toContain("Another process")
    expect(Messages.authStoreMessage({ ...base, path: "/h/auth.json", operation: "read", advice: "Do X." })).toMatch(
      /Do X\.$/
    )
    expect(Messages.authStoreMessage({ ...base, path: "keyring:Codex Auth/cli|1", operation: "read" })).toBe(
      "Could not read the credentials in the OS keyring (keyring:Codex Auth/cli|1): EACCES."
    )
    expect(Messages.authStoreMessage({ ...base, path: "postgres:t/default", operation: "lock" })).toContain(
      "Another replica"
    )
    expect(Messages.sharedHealthMessage({ location: "/h/x", operation: "read", problem: "p" })).toBe(
      "Could not read the shared refresh state at /h/x: p"
    )
  })

  it("a sign-in's failure: the advice, then the detail", () => {
    for (const reason of Messages.signInReasons) expect(Messages.signInMessage({ reason }).length).toBeGreaterThan(10)
    expect(Messages.signInMessage({ reason: "denied", detail: "the provider answered access_denied" })).toBe(
      "The sign-in was refused at the provider. Start it again if that was a mistake. (the provider answered access_denied)"
    )
  })

  it("scrubText: no JWT, no given secret, one line, bounded", () => {
    const jwt = "eyJhbGciOi.eyJzdWIiOiIx.c2ln"
    expect(Messages.scrubText(`bad ${jwt} and rt-SECRET-123\n  next`, ["rt-SECRET-123", "short"])).toBe(
      "bad [redacted] and [redacted] next"
    )
    expect(Messages.scrubText("short stays", ["short"])).toBe("short stays")
    expect(Messages.scrubText("x".repeat(600))).toBe(`${"x".repeat(500)}…`)
  })
})
