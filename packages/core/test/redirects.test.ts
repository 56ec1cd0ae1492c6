import * as Redirects from "@effect-auth-manager/core/redirects"
import { describe, expect, it } from "vitest"

const from = (method: string, streamedBody = false) => ({
  method,
  url: new URL("https://api.example/v1/x?q=1"),
  streamedBody
})

describe("redirects", () => {
  it("follows 301, 302, 303, 307 and 308 with a Location, relative to the request", () => {
    for (const status of [301, 302, 303, 307, 308]) {
      expect(Redirects.redirectTarget(from("GET"), status, "/v2/y")?.url.href, String(status)).toBe(
        "https://api.example/v2/y"
      )
    }
    expect(Redirects.redirectTarget(from("GET"), 304, "/v2/y")).toBeUndefined()
    expect(Redirects.redirectTarget(from("GET"), 302, undefined)).toBeUndefined()
    expect(Redirects.redirectTarget(from("GET"), 302, "http://[bad")).toBeUndefined()
    expect(Redirects.redirectTarget(from("GET"), 302, "file:///etc/passwd")).toBeUndefined()
  })

  it("303, and 301 or 302 after a POST, go on as a GET; 307 and 308 keep the method and body", () => {
    const asGet = (method: string, status: number) => Redirects.redirectTarget(from(method), status, "/n")?.asGet
    expect([asGet("POST", 303), asGet("PUT", 303), asGet("HEAD", 303)]).toEqual([true, true, false])
    expect([asGet("POST", 301), asGet("POST", 302), asGet("PUT", 302)]).toEqual([true, true, false])
    expect([asGet("POST", 307), asGet("POST", 308)]).toEqual([false, false])
    // A streamed body cannot be sent twice, unless it is dropped.
    expect(Redirects.redirectTarget(from("PUT", true), 307, "/n")).toBeUndefined()
    expect(Redirects.redirectTarget(from("POST", true), 303, "/n")?.asGet).toBe(true)
  })

  it("origins and the headers a redirect drops", () => {
    expect(Redirects.sameOrigin(new URL("https://a.example/x"), new URL("https://a.example:443/y"))).toBe(true)
    expect(Redirects.sameOrigin(new URL("https://a.example/"), new URL("http://a.example/"))).toBe(false)
    expect(Redirects.credentialHeaders).toContain("chatgpt-account-id")
    expect(Redirects.maxRedirects).toBe(20)
  })
})
