import * as Pages from "@effect-auth-manager/core/pages"
import { describe, expect, it } from "vitest"

const guarded = {
  "cache-control": "no-store",
  "referrer-policy": "no-referrer",
  "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'",
  "x-content-type-options": "nosniff",
  "connection": "close"
}

describe("pages", () => {
  it("every answer forbids caching, the Referer and scripts", () => {
    for (
      const page of [
        Pages.success("OpenAI"),
        Pages.failure("h", "e"),
        Pages.redirect("http://127.0.0.1:1455/success"),
        Pages.cancelled(),
        Pages.notFound()
      ]
    ) {
      expect(page.headers).toMatchObject(guarded)
      expect(page.headers["content-type"]).toMatch(/^text\/(html|plain)/)
    }
  })

  it("the success page names the provider, escaped", () => {
    const page = Pages.success("<Acme & Co>")
    expect([page.status, page.headers["content-type"]]).toEqual([200, "text/html; charset=utf-8"])
    expect(page.body).toContain(
      "<p id=\"signed-in\">effect-auth-manager is now signed in with &lt;Acme &amp; Co&gt;.</p>"
    )
    expect(page.body).not.toContain("<Acme")
  })

  it("a failure says what went wrong, escaped, with its status (400 unless told)", () => {
    const page = Pages.failure("Heading \"x\"", "bad <script>alert('x')</script>", 502)
    expect(page.status).toBe(502)
    expect(page.body).toContain("<h1>Heading &quot;x&quot;</h1>")
    expect(page.body).toContain(
      "<p id=\"sign-in-error\">bad &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;</p>"
    )
    expect(page.body).not.toContain("<script>")
    expect(Pages.failure("h", "e").status).toBe(400)
  })

  it("the redirect, the cancel and the unknown path", () => {
    expect(Pages.redirect("http://127.0.0.1:1455/success")).toMatchObject({
      status: 302,
      headers: { location: "http://127.0.0.1:1455/success" },
      body: ""
    })
    expect(Pages.cancelled()).toMatchObject({ status: 200, body: "Login cancelled" })
    expect(Pages.notFound()).toMatchObject({ status: 404, body: "Not Found" })
  })
})
