import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Layer, Logger, Option, Redacted, References, Result, Tracer } from "effect"
import { HttpServerResponse } from "effect/http"
import { TestClock } from "effect/testing"
import { type AddressInfo, connect, createServer, type Socket } from "node:net"
import { PermanentRefreshError } from "../src/errors/Errors.js"
import { AuthManager } from "../src/manager/AuthManager.js"
import * as OAuthProvider from "../src/oauth/OAuthProvider.js"
import { TokenRefresher } from "../src/oauth/TokenRefresher.js"
import { SignIn } from "../src/signin/SignIn.js"
import { AuthStore } from "../src/stores/AuthStore.js"
import * as CodexIssuer from "../src/testing/CodexIssuer.js"
import * as TokenEndpoint from "../src/testing/TokenEndpoint.js"

/** The sign-in stack over a memory store, for a provider (or the effect that discovers it). */
const stackFor = (
  provider: Parameters<typeof SignIn.make>[0],
  settings: { readonly timeout?: Duration.Duration } = {}
) =>
  Layer.effect(SignIn, SignIn.make(provider, settings)).pipe(
    Layer.provideMerge(
      Layer.effect(AuthManager, AuthManager.make({})).pipe(
        Layer.provideMerge(Layer.merge(
          AuthStore.layerMemory(),
          // Sign-in never refreshes: a refresh here would be a defect, and fails for good.
          TokenRefresher.layerTest([Effect.fail(new PermanentRefreshError({ reason: "reused", status: 401 }))])
        ))
      )
    ),
    Layer.provideMerge(NodeHttpClient.layerUndici)
  )

/** The sign-in stack for a Codex issuer, on ephemeral ports. */
const stack = (issuer: string, settings: { readonly timeout?: Duration.Duration } = {}) =>
  stackFor(OAuthProvider.codex({ issuer, ports: [0] }), settings)

/** What a browser does: follows the redirects by plain HTTP requests; returns each hop. */
const browse = (url: string) =>
  Effect.promise(async () => {
    const hops: Array<{ readonly url: string; readonly status: number; readonly body: string }> = []
    let next: string | null = url
    while (next !== null && hops.length < 5) {
      const response: Response = await fetch(next, { redirect: "manual" })
      const body = await response.text()
      hops.push({ url: next, status: response.status, body })
      const location = response.headers.get("location")
      next = location === null ? null : new URL(location, next).toString()
    }
    return hops
  })

const portOf = (login: { readonly redirectUri: string }) => Number(new URL(login.redirectUri).port)

describe("SignIn, Codex profile: the browser sign-in", () => {
  it.live("authorize, callback, exchange, save, success page; no secret on a page", () =>
    Effect.gen(function*() {
      const issuer = yield* CodexIssuer.make()
      yield* Effect.gen(function*() {
        const signIn = yield* SignIn
        const login = yield* signIn.startBrowser()
        expect(login._tag).toBe("Browser")
        const url = new URL(login.authUrl)
        expect(url.searchParams.get("redirect_uri")).toBe(login.redirectUri)
        expect(url.searchParams.get("code_challenge_method")).toBe("S256")
        const hops = yield* browse(login.authUrl)
        expect(hops.map((hop) => hop.status)).toEqual([302, 302, 200])
        expect(hops[1]!.url).toMatch(/\/auth\/callback\?code=ac_SECRET_/)
        expect(hops[2]!.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/success$/)
        expect(hops[2]!.body).toContain("You are signed in")
        for (const hop of hops.slice(1)) expect(hop.body).not.toMatch(/SECRET|eyJ/)
        const state = yield* login.await
        expect(state).toMatchObject({ method: "chatgpt", email: "ada@example.com", planType: "plus" })
        const stored = yield* AuthStore.use((store) => store.load)
        const tokens = Option.getOrThrow(stored.document).tokens!
        expect(tokens.account_id).toBe("acct_test_1")
        expect(Redacted.value(tokens.refresh_token)).toMatch(/^rt_SECRET_/)
        yield* login.closed
      }).pipe(Effect.provide(stack(issuer.issuer)))
      const exchange = (yield* issuer.received).find((r) => r.path === "/oauth/token")!
      expect(exchange.body).toMatch(
        /^grant_type=authorization_code&code=ac_SECRET_[\w-]+&redirect_uri=http%3A%2F%2F127\.0\.0\.1%3A\d+%2Fauth%2Fcallback&client_id=app_EMoamEEZ73f0CkXaXp7hrann&code_verifier=[\w-]{86}$/
      )
    }))

  it.live("the callback's authorization code reaches no span and no log line", () =>
    Effect.gen(function*() {
      const issuer = yield* CodexIssuer.make()
      const lines: Array<string> = []
      const tracer = Tracer.make({
        span(options) {
          const span = new Tracer.NativeSpan(options)
          const end = span.end.bind(span)
          span.end = (endTime, exit) => {
            lines.push(`span ${span.name} ${JSON.stringify([...span.attributes])} ${JSON.stringify(span.events)}`)
            end(endTime, exit)
          }
          return span
        }
      })
      const capture = Layer.mergeAll(
        Logger.layer([Logger.make((options) => void lines.push(String(Logger.formatLogFmt.log(options))))]),
        Layer.succeed(References.MinimumLogLevel, "All"),
        Layer.succeed(Tracer.Tracer, tracer)
      )
      yield* Effect.gen(function*() {
        const login = yield* SignIn.use((signIn) => signIn.startBrowser())
        const hops = yield* browse(login.authUrl)
        expect(hops[1]!.url).toMatch(/\/auth\/callback\?code=ac_SECRET_/)
        yield* login.await
        yield* login.closed
      }).pipe(Effect.provide(stack(issuer.issuer)), Effect.provide(capture))
      const text = lines.join("\n")
      expect(text).toContain("SignIn.exchangeCode")
      expect(text).toContain("Signed in; credentials saved")
      expect(text).not.toMatch(/SECRET/)
    }))

  it.live("a denied sign-in and a callback with another state: nothing saved, a page that says why", () =>
    Effect.gen(function*() {
      const issuer = yield* CodexIssuer.make()
      yield* issuer.setDecision({ _tag: "Error", error: "access_denied" })
      const outcomes: Array<readonly [string, string]> = []
      yield* Effect.gen(function*() {
        const login = yield* SignIn.use((signIn) =>
          signIn.startBrowser({
            onComplete: (outcome, loginId) =>
              Effect.sync(() =>
                void outcomes.push([loginId, Result.isFailure(outcome) ? outcome.failure.reason : "ok"])
              )
          })
        )
        const forged = yield* browse(`${login.redirectUri}?code=ac_forged&state=not-ours`)
        expect(forged[0]!.status).toBe(400)
        expect(forged[0]!.body).toContain("state mismatch")
        const hops = yield* browse(login.authUrl)
        expect(hops.map((hop) => hop.status)).toEqual([302, 400])
        expect((yield* Effect.flip(login.await)).reason).toBe("denied")
        expect((yield* AuthManager.use((auth) => auth.state)).method).toBe(null)
        // Told once, with the outcome and the login's id.
        expect(outcomes).toEqual([[login.loginId, "denied"]])
      }).pipe(Effect.provide(stack(issuer.issuer)))
      expect((yield* issuer.received).filter((r) => r.path === "/oauth/token")).toEqual([])
    }))

  it.effect("a sign-in not completed in 10 minutes is abandoned: nothing saved, its server closed", () =>
    Effect.gen(function*() {
      const issuer = yield* CodexIssuer.make()
      yield* Effect.gen(function*() {
        const signIn = yield* SignIn
        const login = yield* signIn.startBrowser()
        const waiting = yield* Effect.forkChild(login.await)
        yield* TestClock.adjust(Duration.minutes(9))
        expect(waiting.pollUnsafe()).toBeUndefined()
        yield* TestClock.adjust(Duration.minutes(1))
        expect(Exit.isFailure(yield* Fiber.await(waiting))).toBe(true)
        expect((yield* Effect.flip(login.await)).reason).toBe("timeout")
        yield* login.closed
        expect((yield* AuthManager.use((auth) => auth.state)).method).toBe(null)
        // The callback server is gone: the browser can no longer come back.
        const refused = yield* Effect.promise(() => fetch(login.redirectUri).then(() => false, () => true))
        expect(refused).toBe(true)
        expect(yield* signIn.cancel(login.loginId)).toBe("notFound")
      }).pipe(Effect.provide(stack(issuer.issuer)))
    }))
})

describe("SignIn, Codex profile: the fixed port", () => {
  /** A port of 127.0.0.1 nothing listens on (at the time it is asked for). */
  const freePort = Effect.callback<number>((resume) => {
    const server = createServer()
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resume(Effect.succeed(port)))
    })
  })

  it.live("a sign-in whose service stops ends as canceled: nobody waits for ever", () =>
    Effect.gen(function*() {
      const issuer = yield* CodexIssuer.make()
      const login = yield* SignIn.use((signIn) => signIn.startBrowser()).pipe(Effect.provide(stack(issuer.issuer)))
      const error = yield* Effect.flip(login.await)
      expect([error.reason, error.detail]).toEqual(["canceled", "the sign-in service stopped"])
      yield* login.closed
    }))

  // The second sign-in retries its bind every 200 ms until the first lets go: real time.
  it.live("a second sign-in on the port asks the first to let go (GET /cancel), as Codex does, then binds", () =>
    Effect.gen(function*() {
      const issuer = yield* CodexIssuer.make()
      const port = yield* freePort
      const provider = OAuthProvider.codex({ issuer: issuer.issuer, ports: [port] })
      // The first sign-in's service stays up, in the test's scope.
      const firstService = yield* Layer.build(stackFor(provider))
      const first = yield* SignIn.use((signIn) => signIn.startBrowser()).pipe(Effect.provide(firstService))
      expect(portOf(first)).toBe(port)
      const second = yield* Effect.gen(function*() {
        const signIn = yield* SignIn
        const login = yield* signIn.startBrowser()
        yield* login.cancel
        return login
      }).pipe(Effect.provide(stackFor(provider)))
      expect(portOf(second)).toBe(port)
      const error = yield* Effect.flip(first.await)
      expect(error.reason).toBe("canceled")
      expect(error.detail).toBe("another sign-in took over the port")
    }))
})

describe("SignIn, Codex profile: the device sign-in", () => {
  // The poll waits the issuer's interval (at least a second) between requests: one second here.
  it.live("shows the user code, and once the person approves it on the issuer's page, saves the tokens", () =>
    Effect.gen(function*() {
      const issuer = yield* CodexIssuer.make({ deviceInterval: 1 })
      yield* Effect.gen(function*() {
        const login = yield* SignIn.use((signIn) => signIn.startDevice())
        expect(login._tag).toBe("Device")
        expect(login.userCode).toMatch(/^[0-9A-F]{4}-[0-9A-F]{4}$/)
        expect(login.verificationUrl).toBe(`${issuer.issuer}/codex/device`)
        // What the person does on the page: enter the code.
        const approved = yield* Effect.promise(() =>
          fetch(login.verificationUrl, { method: "POST", body: new URLSearchParams({ user_code: login.userCode }) })
        )
        expect(approved.status).toBe(200)
        const state = yield* login.await
        expect(state).toMatchObject({ method: "chatgpt", email: "ada@example.com" })
        yield* login.closed
      }).pipe(Effect.provide(stack(issuer.issuer)))
      const received = yield* issuer.received
      const exchange = received.find((r) => r.path === "/oauth/token")!
      expect(exchange.fields.redirect_uri).toBe(`${issuer.issuer}/deviceauth/callback`)
      expect(received.filter((r) => r.path === "/api/accounts/deviceauth/token").length).toBeGreaterThanOrEqual(1)
    }))

  it.live("an issuer without device sign-in says so: unsupported", () =>
    Effect.gen(function*() {
      const issuer = yield* CodexIssuer.make({ clientId: "another-client" })
      const error = yield* Effect.flip(SignIn.use((signIn) => signIn.startDevice())).pipe(
        Effect.provide(stack(issuer.issuer))
      )
      expect(error._tag).toBe("SignInError")
    }))
})

describe("SignIn, any OpenID Connect provider", () => {
  const json = (body: object): TokenEndpoint.Behaviour => () => Effect.succeed(HttpServerResponse.jsonUnsafe(body))

  it.live("discovered on first use: a browser sign-in through its own endpoints", () =>
    Effect.gen(function*() {
      const issuer = yield* CodexIssuer.make({ clientId: "oidc-client" })
      // A provider whose discovery document points at the scripted issuer's endpoints.
      const discovery = yield* TokenEndpoint.make(() => Effect.die("set below"))
      const origin = new URL(discovery.url).origin
      yield* discovery.setBehaviour(json({
        issuer: origin,
        authorization_endpoint: `${issuer.issuer}/oauth/authorize`,
        token_endpoint: issuer.tokenUrl
      }))
      const provider = OAuthProvider.discover({ issuer: origin, clientId: "oidc-client" })
      yield* Effect.gen(function*() {
        const signIn = yield* SignIn
        expect(yield* discovery.count).toBe(0)
        const login = yield* signIn.startBrowser()
        expect(new URL(login.redirectUri).pathname).toBe("/callback")
        const hops = yield* browse(login.authUrl)
        expect(hops.map((hop) => hop.status)).toEqual([302, 302, 200])
        expect((yield* login.await).method).toBe("chatgpt")
        yield* signIn.provider
        expect(yield* discovery.count).toBe(1)
      }).pipe(
        Effect.provide(stackFor(provider))
      )
      const exchange = (yield* issuer.received).find((r) => r.path === "/oauth/token")!
      expect(exchange.fields.client_id).toBe("oidc-client")
    }))

  // RFC 8628 waits the interval (at least a second) before each poll: one second here.
  it.live("an RFC 8628 device sign-in: the user code, then the device code grant", () =>
    Effect.gen(function*() {
      const device = yield* TokenEndpoint.make(json({
        device_code: "dc_SECRET_device",
        user_code: "WXYZ-1234",
        verification_uri: "http://127.0.0.1/device",
        verification_uri_complete: "http://127.0.0.1/device?user_code=WXYZ-1234",
        expires_in: 600,
        interval: 0
      }))
      const token = yield* TokenEndpoint.make(yield* TokenEndpoint.rotating("never-sent"))
      yield* token.setBehaviour(json({
        access_token: "at_SECRET",
        refresh_token: "rt_SECRET_new",
        expires_in: 600,
        token_type: "Bearer"
      }))
      const provider = yield* OAuthProvider.discover({
        issuer: "http://127.0.0.1",
        clientId: "cli",
        clientSecret: Redacted.make("client-SECRET"),
        authorizationEndpoint: "http://127.0.0.1/authorize",
        tokenEndpoint: token.url,
        deviceAuthorizationEndpoint: device.url
      }).pipe(Effect.provide(NodeHttpClient.layerUndici))
      yield* Effect.gen(function*() {
        const login = yield* SignIn.use((signIn) => signIn.startDevice())
        expect(login.userCode).toBe("WXYZ-1234")
        expect(login.verificationUrlComplete).toEqual(Option.some("http://127.0.0.1/device?user_code=WXYZ-1234"))
        expect((yield* login.await).method).toBe("chatgpt")
        const stored = yield* AuthStore.use((store) => store.load)
        expect(Redacted.value(Option.getOrThrow(stored.document).tokens!.refresh_token)).toBe("rt_SECRET_new")
      }).pipe(
        Effect.provide(stackFor(provider))
      )
      const [poll] = yield* token.requests
      // client_secret_basic: the client is named in the Authorization header, not the body.
      expect(poll!.fields).toEqual({
        grant_type: "urn:ietf:params:oauth:grant-type:device_code",
        device_code: "dc_SECRET_device"
      })
    }))
})

describe("the loopback server holds nothing up, whatever connections are open", () => {
  /** A connection to `port` that sends `preface` (nothing: a browser's preconnect) and then waits. */
  const openSocket = (port: number, preface: string) =>
    Effect.acquireRelease(
      Effect.callback<Socket>((resume) => {
        const socket = connect(port, "127.0.0.1", () => {
          if (preface === "") return resume(Effect.succeed(socket))
          socket.write(preface, () => resume(Effect.succeed(socket)))
        })
        socket.on("error", () => {})
      }),
      (socket) => Effect.sync(() => socket.destroy())
    )
  /** Completes when the other end has closed `socket`. */
  const closedByServer = (socket: Socket) =>
    Effect.callback<void>((resume) => {
      if (socket.closed) return resume(Effect.void)
      socket.once("close", () => resume(Effect.void))
    })
  // A slowloris: a request line and one header, then nothing more.
  const slowloris = "GET /auth/callback?state=x HTTP/1.1\r\nHost: 127.0.0.1\r\n"

  it.effect("after a sign-in that succeeded, connections the browser keeps open hold nothing up (on the TestClock)", () =>
    Effect.gen(function*() {
      const issuer = yield* CodexIssuer.make()
      yield* Effect.gen(function*() {
        const signIn = yield* SignIn
        const login = yield* signIn.startBrowser()
        // A browser's preconnect, open before and after it got its pages (fetch keeps its own open too).
        const preconnect = yield* openSocket(portOf(login), "")
        yield* browse(login.authUrl)
        yield* login.await
        yield* login.closed
        yield* closedByServer(preconnect)
        const next = yield* signIn.startBrowser()
        expect(yield* signIn.cancel(next.loginId)).toBe("canceled")
      }).pipe(Effect.provide(stack(issuer.issuer)))
    }))

  // On the TestClock: a close that waited for a timer (a graceful shutdown) would never complete.
  it.effect("cancel with an idle and a slowloris connection open: the cancel completes, both are cut", () =>
    Effect.gen(function*() {
      const issuer = yield* CodexIssuer.make()
      yield* Effect.gen(function*() {
        const signIn = yield* SignIn
        const login = yield* signIn.startBrowser()
        const idle = yield* openSocket(portOf(login), "")
        const slow = yield* openSocket(portOf(login), slowloris)
        expect(yield* signIn.cancel(login.loginId)).toBe("canceled")
        yield* login.closed
        yield* closedByServer(idle)
        yield* closedByServer(slow)
        expect((yield* Effect.flip(login.await)).reason).toBe("canceled")
        // The next start binds and answers; starting another cancels it.
        const next = yield* signIn.startBrowser()
        yield* openSocket(portOf(next), "")
        const third = yield* signIn.startBrowser()
        expect(yield* signIn.cancel(next.loginId)).toBe("notFound")
        expect(yield* signIn.cancel(third.loginId)).toBe("canceled")
      }).pipe(Effect.provide(stack(issuer.issuer)))
    }))
})
