/**
 * The outside world of the scenarios, on 127.0.0.1 and with no Effect in it, so that both editions face
 * the very same servers: an OAuth token endpoint and a protected API, each counting what it receives.
 */
import { createHash } from "node:crypto"
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import { unsignedJwt } from "./fixtures.js"

export interface Answer {
  readonly status: number
  readonly body: unknown
}

const listen = async (
  handle: (request: IncomingMessage, body: string, response: ServerResponse) => void
): Promise<{ server: Server; port: number }> => {
  const server = createServer((request, response) => {
    const chunks: Array<Buffer> = []
    let size = 0
    request.on("data", (chunk: Buffer) => {
      size += chunk.length
      // A token request is a few hundred bytes: anything over 64 KiB is refused, not buffered.
      if (size > 65_536) request.destroy()
      else chunks.push(chunk)
    })
    request.on("end", () => handle(request, Buffer.concat(chunks).toString("utf8"), response))
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return { server, port: (server.address() as { port: number }).port }
}

const close = (server: Server) =>
  new Promise<void>((resolve) => {
    server.closeAllConnections()
    server.close(() => resolve())
  })

// With its length, as most servers answer (a chunked answer costs a client more to read).
const send = (response: ServerResponse, answer: Answer) => {
  const body = JSON.stringify(answer.body)
  response.writeHead(answer.status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) })
    .end(body)
}

/** The Codex/OpenAI error answer for a dead refresh token. */
export const reused: Answer = { status: 401, body: { error: { code: "refresh_token_reused" } } }

/** A 503 with an optional Retry-After. */
export const unavailable: Answer = { status: 503, body: { error: { code: "unavailable" } } }

/**
 * A healthy provider that rotates: the current refresh token works once and is replaced by `rt-N`;
 * one used before answers `refresh_token_reused`, an unknown one `invalid_grant`.
 */
export const rotating = (first: string) => {
  let current = first
  const used = new Set<string>()
  let issued = 0
  return (fields: URLSearchParams): Answer => {
    const presented = fields.get("refresh_token") ?? ""
    if (presented !== current) {
      return used.has(presented) ? reused : { status: 400, body: { error: "invalid_grant" } }
    }
    used.add(presented)
    current = `rt-${++issued}`
    return {
      status: 200,
      body: {
        token_type: "Bearer",
        access_token: unsignedJwt({ exp: 4_102_444_800, n: issued }),
        refresh_token: current,
        expires_in: 3600
      }
    }
  }
}

export interface TokenEndpoint {
  readonly url: string
  /** The refresh tokens it was sent, in order (test data only). */
  readonly received: Array<string>
  readonly answerWith: (behaviour: (fields: URLSearchParams) => Answer) => void
  readonly close: () => Promise<void>
}

/** A token endpoint answering each request with `behaviour(fields)` (form or JSON bodies). */
export const tokenEndpoint = async (behaviour: (fields: URLSearchParams) => Answer): Promise<TokenEndpoint> => {
  let answer = behaviour
  const received: Array<string> = []
  const { port, server } = await listen((request, body, response) => {
    const fields = (request.headers["content-type"] ?? "").includes("json")
      ? new URLSearchParams(JSON.parse(body) as Record<string, string>)
      : new URLSearchParams(body)
    received.push(fields.get("refresh_token") ?? "")
    send(response, answer(fields))
  })
  return {
    url: `http://127.0.0.1:${port}/oauth/token`,
    received,
    answerWith: (next) => (answer = next),
    close: () => close(server)
  }
}

export interface Api {
  readonly url: string
  /** The bearer token of each request, in order (null without one). */
  readonly received: Array<string | null>
  readonly close: () => Promise<void>
}

/** A protected API: 401 (with `WWW-Authenticate`) for the refused tokens or none, 200 otherwise. */
export const api = async (refuses: (token: string) => boolean): Promise<Api> => {
  const received: Array<string | null> = []
  const { port, server } = await listen((request, _body, response) => {
    const authorization = request.headers.authorization
    const token = authorization?.startsWith("Bearer ") ? authorization.slice("Bearer ".length) : null
    received.push(token)
    if (token === null || refuses(token)) {
      response.setHeader("www-authenticate", "Bearer error=\"invalid_token\"")
      send(response, { status: 401, body: { error: "invalid_token" } })
    } else {
      send(response, { status: 200, body: { ok: true } })
    }
  })
  return { url: `http://127.0.0.1:${port}/v1/me`, received, close: () => close(server) }
}

export interface Issuer {
  /** The issuer's URL: `/oauth/authorize` and `/oauth/token` under it. */
  readonly url: string
  /** The grant type of each token request, in order. */
  readonly grants: Array<string>
  readonly close: () => Promise<void>
}

/** What a sign-in at the issuer below obtains. */
export const signedIn = {
  email: "grace@example.com",
  access: unsignedJwt({ exp: 4_102_444_800, marker: "scenario-signin-access-SECRET-8" }),
  refresh: "scenario-signin-refresh-SECRET-9"
}

/**
 * A Codex-style issuer: `/oauth/authorize` sends the browser back to a loopback `redirect_uri` with a
 * one-time code; `/oauth/token` exchanges it only with the PKCE verifier of its S256 challenge and the
 * same `redirect_uri`, and answers with `signedIn`'s tokens.
 */
export const codexIssuer = async (): Promise<Issuer> => {
  const codes = new Map<string, { readonly challenge: string; readonly redirectUri: string }>()
  const grants: Array<string> = []
  const { port, server } = await listen((request, body, response) => {
    const url = new URL(request.url ?? "/", "http://127.0.0.1")
    if (url.pathname === "/oauth/authorize") {
      const query = url.searchParams
      const redirectUri = query.get("redirect_uri") ?? ""
      const state = query.get("state") ?? ""
      const challenge = query.get("code_challenge") ?? ""
      if (
        !/^http:\/\/127\.0\.0\.1:\d+\//.test(redirectUri) || state === "" ||
        query.get("code_challenge_method") !== "S256"
      ) {
        return send(response, { status: 400, body: { error: "invalid_request" } })
      }
      const code = `ac-${codes.size + 1}`
      codes.set(code, { challenge, redirectUri })
      const target = new URL(redirectUri)
      target.searchParams.set("code", code)
      target.searchParams.set("state", state)
      return response.writeHead(302, { location: target.toString() }).end()
    }
    if (url.pathname !== "/oauth/token") return send(response, { status: 404, body: {} })
    const fields = (request.headers["content-type"] ?? "").includes("json")
      ? new URLSearchParams(JSON.parse(body) as Record<string, string>)
      : new URLSearchParams(body)
    grants.push(fields.get("grant_type") ?? "")
    const grant = codes.get(fields.get("code") ?? "")
    codes.delete(fields.get("code") ?? "")
    const verifier = fields.get("code_verifier") ?? ""
    const valid = fields.get("grant_type") === "authorization_code" && grant !== undefined &&
      fields.get("redirect_uri") === grant.redirectUri &&
      createHash("sha256").update(verifier).digest("base64url") === grant.challenge
    send(
      response,
      valid
        ? {
          status: 200,
          body: {
            id_token: unsignedJwt({
              email: signedIn.email,
              "https://api.openai.com/auth": { chatgpt_plan_type: "pro", chatgpt_account_id: "acct_signin" }
            }),
            access_token: signedIn.access,
            refresh_token: signedIn.refresh,
            token_type: "Bearer",
            expires_in: 3600
          }
        }
        : { status: 400, body: { error: "invalid_grant" } }
    )
  })
  return { url: `http://127.0.0.1:${port}`, grants, close: () => close(server) }
}

/** What a browser does with an authorization URL: follows the redirects; the status of each hop. */
export const browse = async (url: string): Promise<Array<number>> => {
  const statuses: Array<number> = []
  let next: string | null = url
  while (next !== null && statuses.length < 5) {
    const response: Response = await fetch(next, { redirect: "manual" })
    await response.text()
    statuses.push(response.status)
    const location = response.headers.get("location")
    next = location === null ? null : new URL(location, next).toString()
  }
  return statuses
}
