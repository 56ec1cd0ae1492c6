import * as Answers from "@effect-auth-manager/core/signInAnswers"
import { describe, expect, it } from "vitest"

describe("signInAnswers", () => {
  it("a refusal's reason and detail: known codes quoted, a 401 is the client's fault", () => {
    expect(Answers.refusal("the token endpoint", 400, { error: "access_denied" })).toEqual({
      reason: "denied",
      detail: "the token endpoint answered HTTP 400 (access_denied)",
      status: 400
    })
    expect(Answers.refusalReason(400, "expired_token")).toBe("expired")
    expect(Answers.refusalReason(400, "invalid_client")).toBe("client_refused")
    expect(Answers.refusalReason(400, "unauthorized_client")).toBe("client_refused")
    expect(Answers.refusalReason(401, undefined)).toBe("client_refused")
    expect(Answers.refusal("x", 400, { error: "code-SECRET" })).toEqual({
      reason: "exchange_failed",
      detail: "x answered HTTP 400",
      status: 400
    })
  })

  it("a sign-in needs an access and a refresh token", () => {
    expect(Answers.signInTokens(JSON.stringify({ access_token: "a", refresh_token: "r", expires_in: 60 }))).toEqual({
      accessToken: "a",
      refreshToken: "r",
      idToken: undefined,
      expiresInMillis: 60_000
    })
    expect(Answers.signInTokens(JSON.stringify({ refresh_token: "r" }))).toEqual({
      problem: "the token endpoint answered without an access token"
    })
    expect(Answers.signInTokens(JSON.stringify({ access_token: "a" }))).toMatchObject({
      problem: expect.stringContaining("offline_access")
    })
    expect(Answers.isProblem(Answers.signInTokens("nonsense"))).toBe(true)
  })

  it("RFC 8628: what to show, how long, how often; pending waits, slow_down slows for good", () => {
    expect(Answers.deviceAuthorization({
      device_code: "d",
      user_code: "U-1",
      verification_url: "https://x/device",
      interval: 0
    })).toEqual({
      deviceCode: "d",
      userCode: "U-1",
      verificationUrl: "https://x/device",
      verificationUrlComplete: undefined,
      expiresIn: 600,
      interval: 1
    })
    expect(Answers.deviceAuthorization({ device_code: "d", user_code: "U" })).toEqual({
      problem: "the device authorization answer lacks device_code, user_code or verification_uri"
    })
    expect(Answers.devicePollStep(200, {}, 5)).toEqual({ next: "tokens" })
    expect(Answers.devicePollStep(400, { error: "authorization_pending" }, 5)).toEqual({ next: "wait", interval: 5 })
    expect(Answers.devicePollStep(400, { error: "slow_down" }, 5)).toEqual({ next: "wait", interval: 10 })
    expect(Answers.devicePollStep(400, { error: "access_denied" }, 5)).toEqual({ next: "refused" })
  })

  it("Codex's device flow: its start, its poll (403/404: not yet), its grant", () => {
    expect(Answers.codexDeviceStart({ device_auth_id: "id", usercode: "ABC", interval: "3" })).toEqual({
      deviceAuthId: "id",
      userCode: "ABC",
      interval: 3
    })
    expect(Answers.codexDeviceStart({ user_code: "ABC" })).toEqual({
      problem: "the device code answer lacks device_auth_id or user_code"
    })
    expect([200, 403, 404, 500].map((status) => Answers.codexPollStep(status, 5))).toEqual([
      { next: "tokens" },
      { next: "wait", interval: 5 },
      { next: "wait", interval: 5 },
      { next: "refused" }
    ])
    expect(Answers.codexDeviceGrant({ authorization_code: "c", code_verifier: "v" })).toEqual({
      code: "c",
      verifier: "v"
    })
    expect(Answers.isProblem(Answers.codexDeviceGrant({ authorization_code: "c" }))).toBe(true)
    expect(Answers.codexDeviceLifetime).toBe(900_000)
  })
})
