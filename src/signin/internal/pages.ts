/**
 * The pages the browser lands on at the end of a sign-in. They say what
 * happened and what to do next, and never hold a code or a token.
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"

const escape = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" })[c] ?? c)

// The callback URL carries the code: no caching, no Referer, no script.
export const pageHeaders = {
  "cache-control": "no-store",
  "referrer-policy": "no-referrer",
  "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'",
  "x-content-type-options": "nosniff",
  "connection": "close"
}

const page = (title: string, heading: string, body: string, status: number) =>
  HttpServerResponse.text(
    `<!doctype html>
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
`,
    { status, headers: pageHeaders, contentType: "text/html; charset=utf-8" }
  )

export const success = (provider: string) =>
  page(
    "Signed in",
    "You are signed in",
    `<p id="signed-in">effect-auth-manager is now signed in with ${escape(provider)}.</p>
<p>You can close this tab and go back to your terminal or editor.</p>`,
    200
  )

export const failure = (heading: string, explanation: string, status = 400) =>
  page(
    "Sign-in failed",
    heading,
    `<p id="sign-in-error">${escape(explanation)}</p>
<p>Nothing was saved. Go back to your terminal or editor and start the sign-in again.</p>`,
    status
  )

export const notFound = () => HttpServerResponse.text("Not Found", { status: 404, headers: pageHeaders })
