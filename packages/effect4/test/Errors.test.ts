import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Schema } from "effect"
import {
  AuthStoreError,
  CredentialsUnavailableError,
  PermanentRefreshError,
  scrubText,
  SignInError,
  TransientRefreshError
} from "../src/errors/Errors.js"

describe("Errors", () => {
  it("each says what happened and what to do", () => {
    expect(new PermanentRefreshError({ reason: "reused" }).message).toBe(
      "Your access token could not be refreshed because your refresh token was already used. " +
        "Please log out and sign in again."
    )
    expect(new PermanentRefreshError({ reason: "invalid_client", status: 401 }).message).toContain(
      "Check the configured client id and client secret"
    )
    const transient = new TransientRefreshError({
      kind: "status",
      detail: "the token endpoint answered HTTP 503",
      status: 503,
      retryAfter: Duration.seconds(30)
    })
    expect(transient.message).toContain("the token endpoint answered HTTP 503 (the server asked to wait 30s)")
    expect(transient.message).toContain("retried after a backoff")
    expect(new TransientRefreshError({ kind: "client", detail: "the host app's token was refused" }).message)
      .toContain("The app that supplied it must supply new tokens.")
    expect(new AuthStoreError({ path: "/x/auth.json", operation: "read", problem: "it is not JSON" }).message).toBe(
      "Could not read the credentials in /x/auth.json: it is not JSON. " +
        "The file was left untouched: repair it, or move it away and sign in again."
    )
    expect(
      new AuthStoreError({ path: "postgres:effect_auth_credentials/default", operation: "lock", problem: "busy" })
        .message
    ).toContain("Another replica is busy")
    expect(new CredentialsUnavailableError({ reason: "poisoned", refreshReason: "expired" }).message).toContain(
      "because your refresh token has expired"
    )
    expect(new SignInError({ reason: "port_busy", detail: "1455 and 1457" }).message).toContain("(1455 and 1457)")
  })

  it.effect("are tagged failures that catchTag handles", () =>
    Effect.gen(function*() {
      const handled = yield* Effect.fail(new PermanentRefreshError({ reason: "revoked" })).pipe(
        Effect.catchTag("PermanentRefreshError", (error) => Effect.succeed(error.reason))
      )
      expect(handled).toBe("revoked")
    }))

  it("cross the wire: encoded and decoded by their schema, the message intact", () => {
    const error = new TransientRefreshError({
      kind: "status",
      detail: "the token endpoint answered HTTP 429",
      status: 429,
      retryAfter: Duration.seconds(5)
    })
    const encoded = Schema.encodeSync(TransientRefreshError)(error)
    expect(JSON.parse(JSON.stringify(encoded))).toEqual({
      _tag: "TransientRefreshError",
      kind: "status",
      detail: "the token endpoint answered HTTP 429",
      status: 429,
      retryAfter: 5000
    })
    const decoded = Schema.decodeUnknownSync(TransientRefreshError)(JSON.parse(JSON.stringify(encoded)))
    expect(decoded).toBeInstanceOf(TransientRefreshError)
    expect(decoded.message).toBe(error.message)
  })

  it("scrubText removes secrets and JWTs, keeps one line, and bounds the length", () => {
    const jwt = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2ln"
    const text = `refused ${jwt}\n for refresh-token-SECRET and short`
    expect(scrubText(text, ["refresh-token-SECRET", "short"])).toBe("refused [redacted] for [redacted] and short")
    expect(scrubText("x".repeat(600)).length).toBe(501)
  })
})
