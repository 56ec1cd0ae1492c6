/**
 * The outside world of the scenarios, on 127.0.0.1 and with no Effect in it, so that both editions face
 * the very same servers: an OAuth token endpoint and a protected API, each counting what it receives.
 */
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

const send = (response: ServerResponse, answer: Answer) =>
  response.writeHead(answer.status, { "content-type": "application/json" }).end(JSON.stringify(answer.body))

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
