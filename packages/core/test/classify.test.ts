import * as Classify from "@effect-auth-manager/core/classify"
import { describe, expect, it } from "vitest"

describe("classify: a token endpoint's failure", () => {
  it("a known code of a dead refresh token is permanent, whatever the status", () => {
    const rows: Array<[unknown, Classify.PermanentReason]> = [
      [{ error: { code: "refresh_token_expired" } }, "expired"],
      [{ error: "refresh_token_reused" }, "reused"],
      [{ code: "REFRESH_TOKEN_INVALIDATED" }, "revoked"],
      [{ error: "invalid_grant", error_description: "secret-ish" }, "invalid_grant"],
      [{ error: "invalid_client" }, "invalid_client"],
      [{ error: "unauthorized_client" }, "invalid_client"]
    ]
    for (const [body, reason] of rows) {
      expect(Classify.classifyFailure(400, body, undefined), JSON.stringify(body)).toEqual({
        _tag: "Permanent",
        reason,
        status: 400
      })
    }
    expect(Classify.classifyFailure(401, "not json", undefined)).toEqual({
      _tag: "Permanent",
      reason: "other",
      status: 401
    })
  })

  it("anything else is transient, quoting a known code only, with the Retry-After", () => {
    expect(Classify.classifyFailure(503, undefined, 30_000)).toEqual({
      _tag: "Transient",
      detail: "the token endpoint answered HTTP 503",
      status: 503,
      retryAfter: 30_000
    })
    expect(Classify.classifyFailure(429, { error: "rate_limit_exceeded" }, undefined)).toEqual({
      _tag: "Transient",
      detail: "the token endpoint answered HTTP 429 (rate_limit_exceeded)",
      status: 429
    })
    // An unknown code may echo what was sent: never repeated.
    expect(Classify.classifyFailure(400, { error: "rt_SECRET_echo" }, undefined)).toMatchObject({
      _tag: "Transient",
      detail: "the token endpoint answered HTTP 400"
    })
    for (const status of [403, 404, 408, 500, 502]) {
      expect(Classify.classifyFailure(status, {}, undefined)._tag).toBe("Transient")
    }
  })

  it("reads error codes, Retry-After and fields as servers send them", () => {
    expect(Classify.errorCode({ error: { code: "A" } })).toBe("a")
    expect(Classify.errorCode({ error: "B" })).toBe("b")
    expect(Classify.errorCode({ code: "C" })).toBe("c")
    expect(Classify.errorCode("x")).toBeUndefined()
    expect(Classify.errorCode(null)).toBeUndefined()
    expect(Classify.isKnownCode("slow_down")).toBe(true)
    expect(Classify.isKnownCode("anything")).toBe(false)
    expect(Classify.parseRetryAfter(" 120 ", 0)).toBe(120_000)
    expect(Classify.parseRetryAfter("Thu, 01 Jan 1970 00:01:00 GMT", 20_000)).toBe(40_000)
    expect(Classify.parseRetryAfter("Thu, 01 Jan 1970 00:00:00 GMT", 20_000)).toBe(0)
    expect(Classify.parseRetryAfter("soon", 0)).toBeUndefined()
    expect(Classify.parseRetryAfter(undefined, 0)).toBeUndefined()
    expect(Classify.numberField({ a: "5", b: 2.5, c: "x", d: " 7.5 " }, "a")).toBe(5)
    expect(["b", "c", "d", "e"].map((key) => Classify.numberField({ b: 2.5, c: "x", d: " 7.5 " }, key))).toEqual([
      2.5,
      undefined,
      7.5,
      undefined
    ])
    expect(Classify.stringField({ a: "x", b: 1 }, "a")).toBe("x")
    expect(Classify.stringField({ a: "x", b: 1 }, "b")).toBeUndefined()
    expect(Classify.parseJsonLoosely("{")).toBeUndefined()
  })
})

describe("classify: the tokens of a 2xx answer", () => {
  it("keeps every usable field, and drops none for an odd neighbour", () => {
    expect(Classify.parseTokenResponse(JSON.stringify({
      access_token: "a",
      refresh_token: "r",
      id_token: "i",
      expires_in: 3600
    }))).toEqual({ accessToken: "a", refreshToken: "r", idToken: "i", expiresInMillis: 3_600_000 })
    expect(Classify.parseTokenResponse(JSON.stringify({ access_token: "a", id_token: null, expires_in: "60" })))
      .toEqual({ accessToken: "a", expiresInMillis: 60_000 })
    // A rotated refresh token alone is kept; an expiry without an access token describes nothing.
    expect(Classify.parseTokenResponse(JSON.stringify({ refresh_token: "r", expires_in: 60 }))).toEqual({
      refreshToken: "r"
    })
    expect(Classify.parseTokenResponse(JSON.stringify({ access_token: "a", expires_in: -5 }))).toEqual({
      accessToken: "a"
    })
  })

  it("nothing usable: undefined", () => {
    for (const text of ["", "[]", "null", "{}", JSON.stringify({ access_token: "", refresh_token: 5 })]) {
      expect(Classify.parseTokenResponse(text), text).toBeUndefined()
    }
  })
})

describe("classify: writing a token request", () => {
  const fields = [["client_id", "my client"], ["grant_type", "refresh_token"], ["refresh_token", "r t!"]] as const

  it("form-encodes as the Codex CLI does: only unreserved characters stay", () => {
    expect(Classify.formEncode([["a b", "x!'()*~._-"], ["é", "1+1=2&"]])).toBe(
      "a%20b=x%21%27%28%29%2A~._-&%C3%A9=1%2B1%3D2%26"
    )
  })

  it("JSON by default order; a secret goes in the body (post) or, with the client id, in Basic", () => {
    expect(Classify.tokenRequestParts({ clientId: "my client", clientSecret: undefined, bodyFormat: "json" }, fields))
      .toEqual({
        contentType: "application/json",
        body: "{\"client_id\":\"my client\",\"grant_type\":\"refresh_token\",\"refresh_token\":\"r t!\"}"
      })
    expect(Classify.tokenRequestParts({ clientId: "my client", clientSecret: "s&s", bodyFormat: "form" }, fields))
      .toEqual({
        contentType: "application/x-www-form-urlencoded",
        body: "client_id=my%20client&grant_type=refresh_token&refresh_token=r%20t%21&client_secret=s%26s"
      })
    const basic = Classify.tokenRequestParts({
      clientId: "my client",
      clientSecret: "s:s",
      clientAuth: "client_secret_basic",
      bodyFormat: "form"
    }, fields)
    expect(basic.body).toBe("grant_type=refresh_token&refresh_token=r%20t%21")
    expect(Buffer.from(basic.authorization!.replace(/^Basic /, ""), "base64").toString()).toBe("my%20client:s%3As")
    // "none": the secret, if any, is not sent.
    expect(
      Classify.tokenRequestParts({ clientId: "c", clientSecret: "s", clientAuth: "none", bodyFormat: "form" }, [])
    ).toEqual({ contentType: "application/x-www-form-urlencoded", body: "" })
  })
})
