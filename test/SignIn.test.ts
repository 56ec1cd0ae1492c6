import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Duration, Effect, Exit, Fiber, Layer, Option, Queue, Redacted, Stream, TestClock } from "effect"
import { connect, type Socket } from "node:net"
import * as AppServer from "../src/app-server/AppServer.js"
import { AuthManager } from "../src/manager/AuthManager.js"
import * as OAuthProvider from "../src/oauth/OAuthProvider.js"
import { TokenRefresher } from "../src/oauth/TokenRefresher.js"
import * as OAuthHttp from "../src/oauth/TokenRequest.js"
import { startDevice } from "../src/signin/internal/exchange.js"
import { SignIn } from "../src/signin/SignIn.js"
import { AuthStore } from "../src/stores/AuthStore.js"
import * as CodexIssuer from "../src/testing/CodexIssuer.js"
import * as TokenEndpoint from "../src/testing/TokenEndpoint.js"
import { makeCapture } from "./support/capture.js"
import { dead } from "./support/manager.js"

/** The sign-in stack over a memory store, for a Codex issuer, on ephemeral ports. */
const stack = (issuer: string, settings: { readonly timeout?: Duration.Duration } = {}) =>
  Layer.scoped(SignIn, SignIn.make(OAuthProvider.codex({ issuer, ports: [0] }), settings)).pipe(
    Layer.provideMerge(
      Layer.scoped(AuthManager, AuthManager.make({})).pipe(
        Layer.provideMerge(Layer.merge(AuthStore.layerMemory(), TokenRefresher.layerTest([dead()])))
      )
    ),
    Layer.provideMerge(NodeHttpClient.layerUndici)
  )

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

describe("SignIn, Codex profile, in process", () => {
  it.live("a browser sign-in: authorize, callback, exchange, save, success page", () =>
    Effect.gen(function*() {
      const issuer = yield* CodexIssuer.make()
      const outcome = yield* Effect.gen(function*() {
        const signIn = yield* SignIn
        const login = yield* signIn.startBrowser()
        const url = new URL(login.authUrl)
        expect([...url.searchParams.keys()]).toEqual([
          "response_type",
          "client_id",
          "redirect_uri",
          "scope",
          "code_challenge",
          "code_challenge_method",
          "id_token_add_organizations",
          "codex_cli_simplified_flow",
          "state",
          "originator"
        ])
        const hops = yield* browse(login.authUrl)
        expect(hops.map((hop) => hop.status)).toEqual([302, 302, 200])
        expect(hops[2]!.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/success$/)
        expect(hops[2]!.body).toContain("You are signed in")
        const state = yield* login.await
        expect(state).toMatchObject({ method: "chatgpt", email: "ada@example.com", planType: "plus" })
        const stored = yield* Effect.flatMap(AuthStore, (store) => store.load)
        const tokens = Option.getOrThrow(stored.document).tokens!
        expect(tokens.account_id).toBe("acct_test_1")
        expect(Redacted.value(tokens.refresh_token)).toMatch(/^rt_SECRET_/)
        for (const hop of hops.slice(1)) {
          expect(hop.body).not.toMatch(/SECRET|eyJ/)
        }
        return state
      }).pipe(Effect.provide(stack(issuer.issuer)))
      expect(outcome.method).toBe("chatgpt")
      const exchange = (yield* issuer.received).find((r) => r.path === "/oauth/token")!
      expect(exchange.contentType).toBe("application/x-www-form-urlencoded")
      expect(exchange.body).toMatch(
        /^grant_type=authorization_code&code=ac_SECRET_[\w-]+&redirect_uri=http%3A%2F%2F127\.0\.0\.1%3A\d+%2Fauth%2Fcallback&client_id=app_EMoamEEZ73f0CkXaXp7hrann&code_verifier=[\w-]{86}$/
      )
    }).pipe(Effect.scoped))

  it.live("the callback's authorization code reaches no span, log line or metric (the server's request span)", () =>
    Effect.gen(function*() {
      const issuer = yield* CodexIssuer.make()
      const capture = makeCapture()
      yield* Effect.gen(function*() {
        const login = yield* Effect.flatMap(SignIn, (signIn) => signIn.startBrowser())
        const hops = yield* browse(login.authUrl)
        expect(hops[1]!.url).toMatch(/\/auth\/callback\?code=ac_SECRET_/)
        yield* login.await
        yield* login.closed
      }).pipe(Effect.provide(stack(issuer.issuer)), Effect.provide(capture.layer))
      const text = yield* capture.text
      expect(text).toContain("SignIn.exchangeCode")
      expect(text).not.toMatch(/SECRET/)
    }).pipe(Effect.scoped))

  it.scopedLive("a sign-in whose service stops ends as canceled: nobody waits for ever", () =>
    Effect.gen(function*() {
      const issuer = yield* CodexIssuer.make()
      const login = yield* Effect.flatMap(SignIn, (signIn) => signIn.startBrowser()).pipe(
        Effect.provide(stack(issuer.issuer))
      )
      const error = yield* Effect.flip(login.await).pipe(Effect.timeout("10 seconds"))
      expect([error.reason, error.detail]).toEqual(["canceled", "the sign-in service stopped"])
      yield* login.closed.pipe(Effect.timeout("10 seconds"))
    }))

  it.effect("a sign-in not completed in 10 minutes is abandoned: nothing saved, its server closed", () =>
    Effect.gen(function*() {
      const issuer = yield* CodexIssuer.make()
      yield* Effect.gen(function*() {
        const signIn = yield* SignIn
        const login = yield* signIn.startBrowser()
        const waiting = yield* Effect.fork(login.await)
        yield* TestClock.adjust(Duration.minutes(9))
        expect(Option.isNone(yield* Fiber.poll(waiting))).toBe(true)
        yield* TestClock.adjust(Duration.minutes(1))
        expect(Exit.isFailure(yield* Fiber.await(waiting))).toBe(true)
        const error = yield* Effect.flip(login.await)
        expect(error.reason).toBe("timeout")
        expect((yield* Effect.flatMap(AuthManager, (auth) => auth.state)).method).toBe(null)
        // The callback server is gone: the browser can no longer come back.
        const refused = yield* Effect.promise(() => fetch(login.redirectUri).then(() => false, () => true))
        expect(refused).toBe(true)
        expect(yield* signIn.cancel(login.loginId)).toBe("notFound")
      }).pipe(Effect.provide(stack(issuer.issuer)))
    }).pipe(Effect.scoped))
})

describe("RFC 8628 device polling (generic profile), on the TestClock", () => {
  const deviceAnswer = (interval: unknown = 5) => () =>
    Effect.succeed(HttpServerResponse.unsafeJson({
      device_code: "dc_SECRET_device",
      user_code: "WXYZ-1234",
      verification_uri: "http://127.0.0.1/device",
      expires_in: 600,
      interval
    }))

  /** A device endpoint, and a token endpoint answering `script` in turn; each token request is announced on `arrivals`. */
  const setUp = (script: ReadonlyArray<TokenEndpoint.Behaviour>, interval?: unknown) =>
    Effect.gen(function*() {
      const arrivals = yield* Queue.unbounded<TokenEndpoint.ReceivedRequest>()
      const device = yield* TokenEndpoint.make(deviceAnswer(interval))
      const token = yield* TokenEndpoint.make((request) =>
        Effect.zipRight(Queue.offer(arrivals, request), script[Math.min(request.index, script.length - 1)]!(request))
      )
      const provider = yield* OAuthProvider.discover({
        issuer: "http://127.0.0.1",
        clientId: "cli",
        clientSecret: Redacted.make("client-SECRET"),
        clientAuth: "client_secret_basic",
        authorizationEndpoint: "http://127.0.0.1/authorize",
        tokenEndpoint: token.url,
        deviceAuthorizationEndpoint: device.url
      })
      const started = yield* startDevice(provider)
      return { arrivals, started, device, token }
    })

  // The poll's next sleep: a wake-up the clock did not hold in `before`, sooner than a request's
  // timeout (30 s; those come and go meanwhile). Real I/O happens in between: awaited, not slept.
  const counted = (sleeps: Chunk.Chunk<number>) => {
    const counts = new Map<number, number>()
    for (const at of sleeps) counts.set(at, (counts.get(at) ?? 0) + 1)
    return counts
  }
  const sleepsNow = Effect.map(TestClock.sleeps(), counted)
  const nextSleep = (before: ReadonlyMap<number, number>) =>
    Effect.gen(function*() {
      while (true) {
        const now = yield* TestClock.currentTimeMillis
        const added = [...counted(yield* TestClock.sleeps())].find(([at, count]) =>
          count > (before.get(at) ?? 0) && at - now < 30_000
        )
        if (added !== undefined) return added[0] - now
        yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
      }
    })

  const answer = (body: object, status = 400): TokenEndpoint.Behaviour => () =>
    Effect.succeed(HttpServerResponse.unsafeJson(body, { status }))

  it.scoped("authorization_pending waits the interval, slow_down adds 5 s for good, then the tokens", () =>
    Effect.gen(function*() {
      const { arrivals, device, started } = yield* setUp([
        answer({ error: "authorization_pending" }),
        answer({ error: "slow_down" }),
        answer({ error: "authorization_pending" }),
        answer(
          { access_token: "at_SECRET", refresh_token: "rt_SECRET_new", expires_in: "600", token_type: "Bearer" },
          200
        )
      ])
      expect(started.userCode).toBe("WXYZ-1234")
      const deviceRequest = (yield* device.requests)[0]!
      // client_secret_basic: the client is named in the Authorization header, not the body.
      expect(deviceRequest.fields).toEqual({ scope: "openid profile email offline_access" })
      let before = yield* sleepsNow
      const polling = yield* Effect.fork(started.poll)
      const waits: Array<number> = []
      for (let poll = 0; poll < 4; poll++) {
        const wait = yield* nextSleep(before)
        waits.push(wait)
        before = yield* sleepsNow
        yield* TestClock.adjust(wait)
        const request = yield* Queue.take(arrivals)
        expect(request.fields).toEqual({
          grant_type: "urn:ietf:params:oauth:grant-type:device_code",
          device_code: "dc_SECRET_device"
        })
      }
      expect(waits).toEqual([5000, 5000, 10_000, 10_000])
      const tokens = yield* Fiber.join(polling)
      expect(Redacted.value(tokens.refreshToken)).toBe("rt_SECRET_new")
      expect(Option.map(tokens.expiresIn, Duration.toSeconds)).toEqual(Option.some(600))
    }).pipe(Effect.provide(NodeHttpClient.layerUndici)))

  it.scoped("an interval of 0 (or less) from the provider still waits a second between polls: no request storm", () =>
    Effect.gen(function*() {
      for (const interval of [0, -3, "0"]) {
        const { arrivals, started } = yield* setUp([answer({ error: "authorization_pending" })], interval)
        const before = yield* sleepsNow
        const polling = yield* Effect.fork(started.poll)
        expect(yield* nextSleep(before)).toBe(1000)
        expect(yield* Queue.size(arrivals)).toBe(0)
        yield* Fiber.interrupt(polling)
      }
    }).pipe(Effect.provide(NodeHttpClient.layerUndici)))

  it.scoped("expired_token and access_denied end the sign-in with a reason a person understands", () =>
    Effect.gen(function*() {
      for (const [code, reason] of [["expired_token", "expired"], ["access_denied", "denied"]] as const) {
        const { started } = yield* setUp([answer({ error: code })])
        const before = yield* sleepsNow
        const polling = yield* Effect.fork(Effect.flip(started.poll))
        yield* TestClock.adjust(yield* nextSleep(before))
        const error = yield* Fiber.join(polling)
        expect(error.reason).toBe(reason)
        expect(error.message).not.toContain("SECRET")
      }
    }).pipe(Effect.provide(NodeHttpClient.layerUndici)))
})

describe("the token request of a confidential client", () => {
  it.effect("client_secret_basic: form-encoded credentials in Authorization, no client_id or secret in the body", () =>
    Effect.gen(function*() {
      const request = OAuthHttp.tokenRequest("http://127.0.0.1/token", {
        clientId: "a client:1",
        clientSecret: Option.some(Redacted.make("s3cr*t pass")),
        clientAuth: "client_secret_basic",
        bodyFormat: "form"
      }, [["grant_type", "refresh_token"], ["refresh_token", Redacted.make("rt 1*")], ["client_id", "a client:1"]])
      expect(request.headers.authorization).toBe(
        `Basic ${Buffer.from("a%20client%3A1:s3cr%2At%20pass").toString("base64")}`
      )
      const body = request.body as { readonly body: Uint8Array }
      expect(new TextDecoder().decode(body.body)).toBe("grant_type=refresh_token&refresh_token=rt%201%2A")
    }))
})

describe("the loopback server holds nothing up, whatever connections are open", () => {
  /** A connection to `port` that sends `preface` (nothing: a browser's preconnect) and then waits. */
  const openSocket = (port: number, preface: string) =>
    Effect.acquireRelease(
      Effect.async<Socket>((resume) => {
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
    Effect.async<void>((resume) => {
      if (socket.closed) return resume(Effect.void)
      socket.once("close", () => resume(Effect.void))
    })
  const portOf = (login: { readonly redirectUri: string }) => Number(new URL(login.redirectUri).port)
  // A slowloris: a request line and one header, then nothing more.
  const slowloris = "GET /auth/callback?state=x HTTP/1.1\r\nHost: 127.0.0.1\r\n"

  it.live("cancel with an idle and a slowloris connection open: the cancel completes, both are closed, a new sign-in starts", () =>
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
        // The next start binds and answers, and a connection held open to it does not hold up the start after it.
        const next = yield* signIn.startBrowser()
        yield* openSocket(portOf(next), "")
        const third = yield* signIn.startBrowser()
        expect(yield* signIn.cancel(next.loginId)).toBe("notFound")
        expect(yield* signIn.cancel(third.loginId)).toBe("canceled")
      }).pipe(Effect.provide(stack(issuer.issuer)))
    }).pipe(Effect.scoped))

  it.live("after a sign-in that succeeded, a connection the browser keeps open does not hold up the next start", () =>
    Effect.gen(function*() {
      const issuer = yield* CodexIssuer.make()
      yield* Effect.gen(function*() {
        const signIn = yield* SignIn
        const login = yield* signIn.startBrowser()
        // A preconnect the browser made and never used.
        const idle = yield* openSocket(portOf(login), "")
        yield* browse(login.authUrl)
        yield* login.await
        yield* login.closed
        yield* closedByServer(idle)
        const next = yield* signIn.startBrowser()
        expect(yield* signIn.cancel(next.loginId)).toBe("canceled")
      }).pipe(Effect.provide(stack(issuer.issuer)))
    }).pipe(Effect.scoped))

  it.live("the app server: account/login/cancel is answered with connections open, and so is every request after it", () =>
    Effect.gen(function*() {
      const issuer = yield* CodexIssuer.make()
      const input = yield* Queue.unbounded<string>()
      const out = yield* Queue.unbounded<{ readonly id?: string; readonly result?: any; readonly method?: string }>()
      const answerTo = (id: string) =>
        Effect.flatMap(
          Stream.fromQueue(out).pipe(Stream.filter((message) => message.id === id), Stream.runHead),
          Option.match({ onNone: () => Effect.die(`no answer to ${id}`), onSome: Effect.succeed })
        )
      const send = (id: string, method: string, params: object = {}) =>
        Queue.offer(input, JSON.stringify({ id, method, params }))
      yield* AppServer.serveWhileStarting(
        Stream.fromQueue(input),
        (line) => Queue.offer(out, JSON.parse(line)),
        { codexHome: "/tmp/codex", version: "test", platformOs: "linux", platformFamily: "unix" },
        Layer.build(stack(issuer.issuer))
      ).pipe(Effect.forkScoped)
      yield* send("init", "initialize")
      yield* answerTo("init")
      yield* send("start", "account/login/start", { type: "chatgpt" })
      const started = (yield* answerTo("start")).result as { readonly loginId: string; readonly authUrl: string }
      const port = Number(new URL(new URL(started.authUrl).searchParams.get("redirect_uri")!).port)
      yield* openSocket(port, "")
      yield* openSocket(port, slowloris)
      yield* send("cancel", "account/login/cancel", { loginId: started.loginId })
      yield* send("status", "getAuthStatus")
      yield* send("again", "account/login/start", { type: "chatgpt" })
      expect((yield* answerTo("cancel")).result).toEqual({ status: "canceled" })
      expect((yield* answerTo("status")).result).toMatchObject({ authMethod: null })
      expect((yield* answerTo("again")).result).toMatchObject({ type: "chatgpt" })
    }).pipe(Effect.scoped))
})
