/**
 * The pages the browser lands on at the end of a sign-in, as plain data
 * (status, headers, body) that each edition turns into its own HTTP
 * response. They say what happened and what to do next, and never hold a
 * code or a token.
 */

/** An HTTP answer of the sign-in's loopback server. */
export interface Page {
  readonly status: number
  /** Every header, `content-type` included. */
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
}

const escape = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" })[c] ?? c)

/** The headers of every answer: the callback URL carries the code, so no caching, no Referer, no script. */
export const pageHeaders: Readonly<Record<string, string>> = {
  "cache-control": "no-store",
  "referrer-policy": "no-referrer",
  "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'",
  "x-content-type-options": "nosniff",
  "connection": "close"
}

const html = (title: string, heading: string, body: string, status: number): Page => ({
  status,
  headers: { ...pageHeaders, "content-type": "text/html; charset=utf-8" },
  body: `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(title)}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto; padding: 0 1rem; color: #1f2328; }
h1 { font-size: 1.5rem; }
p { line-height: 1.5; }
</style>
</head>
<body>
<h1>${escape(heading)}</h1>
${body}
</body>
</html>
`
})

const text = (body: string, status: number, headers: Readonly<Record<string, string>> = {}): Page => ({
  status,
  headers: { ...pageHeaders, "content-type": "text/plain", ...headers },
  body
})

/** The page the browser is sent to once the sign-in is saved. */
export const success = (provider: string): Page =>
  html(
    "Signed in",
    "You are signed in",
    `<p id="signed-in">effect-auth-manager is now signed in with ${escape(provider)}.</p>
<p>You can close this tab and go back to your terminal or editor.</p>`,
    200
  )

/** A sign-in that did not complete: what went wrong (`explanation` is escaped) and what to do. */
export const failure = (heading: string, explanation: string, status = 400): Page =>
  html(
    "Sign-in failed",
    heading,
    `<p id="sign-in-error">${escape(explanation)}</p>
<p>Nothing was saved. Go back to your terminal or editor and start the sign-in again.</p>`,
    status
  )

/** Away from the address that carries the code, e.g. `redirect(origin + "/success")`. */
export const redirect = (location: string): Page => text("", 302, { location })

/** The answer to an older login server's owner asking it to stop, as Codex's login server answers. */
export const cancelled = (): Page => text("Login cancelled", 200)

export const notFound = (): Page => text("Not Found", 404)
