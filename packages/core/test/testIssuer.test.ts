import { challengeOf } from "@effect-auth-manager/core/pkce"
import * as TestIssuer from "@effect-auth-manager/core/testIssuer"
import { describe, expect, it } from "vitest"

describe("testIssuer: a rotating token endpoint", () => {
  it("each refresh token works once; a used one is reused, any other unknown", () => {
    const start = TestIssuer.rotation("rt-0")
    const [first, after] = TestIssuer.present("rt-0")(start)
    expect([first, after.current]).toEqual([1, "rt-1"])
    expect(TestIssuer.present("rt-0")(after)[0]).toBe("reused")
    expect(TestIssuer.present("nope")(after)[0]).toBe("unknown")
    expect(TestIssuer.present("rt-1")(after)[0]).toBe(2)
  })

  it("unsigned JWTs carry their claims", () => {
    const [, payload, signature] = TestIssuer.unsignedJwt({ a: 1 }).split(".")
    expect(JSON.parse(Buffer.from(payload!, "base64url").toString())).toEqual({ a: 1 })
    expect(signature).toBe("signature")
  })
})

describe("testIssuer: a Codex-compatible issuer", () => {
  const verifier = "v".repeat(43)
  const grant = { challenge: challengeOf(verifier), redirectUri: "http://127.0.0.1:1455/auth/callback", clientId: "c" }
  const fields = { code: "ac-1", client_id: "c", redirect_uri: grant.redirectUri, code_verifier: verifier }

  it("a code is spent once, checked against the client, the redirect URI and PKCE", () => {
    const granted = TestIssuer.grantCode("ac-1", grant)(TestIssuer.initialIssuer)
    const [ok, spent] = TestIssuer.redeem(fields)(granted)
    expect(ok).toBeUndefined()
    expect(TestIssuer.redeem(fields)(spent)[0]).toBe("authorization code already used")
    expect(TestIssuer.redeem({ ...fields, code: "x" })(granted)[0]).toBe("unknown authorization code")
    const [wrongClient, afterWrong] = TestIssuer.redeem({ ...fields, client_id: "d" })(granted)
    expect(wrongClient).toBe("client_id does not match")
    expect(TestIssuer.redeem(fields)(afterWrong)[0]).toBe("authorization code already used")
    expect(TestIssuer.redeem({ ...fields, redirect_uri: "http://x" })(granted)[0]).toBe("redirect_uri does not match")
    expect(TestIssuer.redeem({ ...fields, code_verifier: "w".repeat(43) })(granted)[0]).toBe("PKCE verification failed")
  })

  it("refresh tokens are current once, then used", () => {
    const [n, issued] = TestIssuer.issue("rt-a")(TestIssuer.initialIssuer)
    expect(n).toBe(1)
    const [first, used] = TestIssuer.presentRefreshToken("rt-a")(issued)
    expect(first).toBe("current")
    expect(TestIssuer.presentRefreshToken("rt-a")(used)[0]).toBe("used")
    expect(TestIssuer.presentRefreshToken("rt-b")(used)[0]).toBeUndefined()
  })

  it("a device sign-in waits for approval by user code, then hands over a code", () => {
    const started = TestIssuer.startDevice("AB12-CD34", "da-1")(TestIssuer.initialIssuer)
    const poll = { user_code: "AB12-CD34", device_auth_id: "da-1" }
    expect(TestIssuer.devicePoll(started, poll)).toBe("pending")
    expect(TestIssuer.devicePoll(started, { ...poll, device_auth_id: "da-2" })).toBe("unknown")
    expect(TestIssuer.approve("nope")(started)[0]).toBe(false)
    const [approved, after] = TestIssuer.approve(" ab12-cd34 ")(started)
    expect(approved).toBe(true)
    expect(TestIssuer.devicePoll(after, poll)).toBe("approved")
    const handed = TestIssuer.handOver("AB12-CD34", "ac-2", grant)(after)
    expect(TestIssuer.devicePoll(handed, poll)).toBe("unknown")
    expect(handed.codes.get("ac-2")).toEqual({ ...grant, used: false })
  })

  it("authorize requests as the Codex CLI makes them", () => {
    const query = new URLSearchParams({
      response_type: "code",
      client_id: "c",
      code_challenge_method: "S256",
      code_challenge: "x".repeat(43),
      redirect_uri: "http://localhost:1455/auth/callback",
      state: "s"
    })
    expect(TestIssuer.isValidAuthorize(query, "c")).toBe(true)
    expect(TestIssuer.isValidAuthorize(query, "d")).toBe(false)
    const remote = new URLSearchParams(query)
    remote.set("redirect_uri", "https://evil.example/cb")
    expect(TestIssuer.isValidAuthorize(remote, "c")).toBe(false)
  })
})
