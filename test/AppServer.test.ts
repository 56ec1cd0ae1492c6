import { describe, expect, it } from "@effect/vitest"
import { Chunk, Deferred, Effect, FastCheck as fc, Fiber, Layer, Queue, Ref, Stream } from "effect"
import * as AppServer from "../src/app-server/AppServer.js"
import { apiKeyJson, chatgptJson } from "./support/fixtures.js"
import { callCount, dead, rotated, scripted } from "./support/manager.js"
import { seeded } from "./support/properties.js"
import { schemaErrors } from "./support/schemas.js"

const info = { codexHome: "/tmp/codex", version: "test", platformOs: "linux", platformFamily: "unix" }

/** Runs the protocol over `lines` (after an initialize) and returns every message it wrote. */
const serveLines = (lines: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const out = yield* Ref.make(Chunk.empty<any>())
    const write = (line: string) => Ref.update(out, Chunk.append(JSON.parse(line)))
    const input = Stream.fromIterable([JSON.stringify({ id: "init", method: "initialize", params: {} }), ...lines])
    yield* Effect.scoped(AppServer.serve(input, write, info))
    return Chunk.toArray(yield* Ref.get(out)).filter((m) => m.id !== "init")
  })

type Expected = { readonly answer: false } | {
  readonly answer: true
  readonly id: unknown
  readonly codes: ReadonlyArray<number | "result">
}

/** The protocol's rules, written independently of the server. */
const oracle = (line: string): Expected => {
  if (line.trim() === "") return { answer: false }
  let message: any
  try {
    message = JSON.parse(line)
  } catch {
    // The Codex schema has no error without an id: only a line that opens with one is answered.
    const id = AppServer.recoverId(line)
    return id === null ? { answer: false } : { answer: true, id, codes: [-32700] }
  }
  if (message === null || typeof message !== "object" || Array.isArray(message)) return { answer: false }
  const { id, method } = message
  if (depth(message) > AppServer.maxNesting) {
    const idOk = typeof id === "string" || (typeof id === "number" && Number.isSafeInteger(id))
    return idOk ? { answer: true, id, codes: [-32600] } : { answer: false }
  }
  const validId = typeof id === "string" || (typeof id === "number" && Number.isSafeInteger(id))
  if (id !== undefined && !validId) return { answer: false }
  if (typeof method !== "string") {
    if (id !== undefined && ("result" in message || "error" in message)) return { answer: false }
    return id === undefined ? { answer: false } : { answer: true, id, codes: [-32600] }
  }
  if (id === undefined) return { answer: false }
  if (method === "initialize") return { answer: true, id, codes: [-32600] }
  if (["getAuthStatus", "account/read", "account/login/start", "account/logout"].includes(method)) {
    return { answer: true, id, codes: ["result", -32602] }
  }
  return { answer: true, id, codes: [-32601] }
}

const depth = (value: unknown): number =>
  value !== null && typeof value === "object" ? 1 + Math.max(0, ...Object.values(value).map(depth)) : 0

const noNewline = (text: string) => text.replace(/[\r\n]/g, " ")
const methods = fc.constantFrom(
  "getAuthStatus",
  "account/read",
  "account/login/start",
  "account/logout",
  "initialize",
  "nope",
  ""
)
const ids = fc.oneof(fc.string(), fc.integer(), fc.double(), fc.constant(null), fc.boolean(), fc.object())
const line = fc.oneof(
  fc.string().map(noNewline),
  fc.uint8Array({ maxLength: 64 }).map((bytes) => noNewline(Buffer.from(bytes).toString("latin1"))),
  fc.jsonValue().map((value) => JSON.stringify(value)),
  fc.record({ id: ids, method: methods, params: fc.jsonValue() }, { requiredKeys: [] }).map((m) => JSON.stringify(m)),
  fc.record({
    id: fc.oneof(fc.string(), fc.integer()),
    method: methods,
    params: fc.dictionary(
      fc.constantFrom("includeToken", "refreshToken", "type", "apiKey", "accessToken", "chatgptAccountId"),
      fc.jsonValue()
    )
  })
    .map((m) => JSON.stringify(m))
)

describe("AppServer under random input (fast-check)", () => {
  it.effect.prop("every line gets the answer the protocol's rules call for, and the server never stops", [
    fc.array(line, { maxLength: 25 })
  ], ([lines]) =>
    Effect.gen(function*() {
      const written = yield* serveLines(lines)
      const expected = lines.map(oracle).filter((e): e is Extract<Expected, { answer: true }> => e.answer)
      const responses = written.filter((m) => m.method === undefined)
      expect(responses).toHaveLength(expected.length)
      const unmatched = [...responses]
      for (const want of expected) {
        const index = unmatched.findIndex((m) =>
          JSON.stringify(m.id) === JSON.stringify(want.id) &&
          want.codes.includes(m.error === undefined ? "result" : m.error.code)
        )
        expect(index, `no answer for ${JSON.stringify(want)} in ${JSON.stringify(unmatched)}`).toBeGreaterThanOrEqual(0)
        unmatched.splice(index, 1)
      }
      for (const message of written) {
        expect(message).not.toHaveProperty("jsonrpc")
        expect(schemaErrors("JSONRPCMessage", message)).toEqual([])
      }
    }).pipe(Effect.provide(scripted(chatgptJson(), [dead()]))), { fastCheck: seeded(80) })
})

const request = (id: string | number, method: string, params?: unknown) =>
  JSON.stringify(params === undefined ? { id, method } : { id, method, params })

/** Which schema each message the server writes must validate against. */
const schemaOf = (message: any): string | undefined =>
  message.method === "account/updated"
    ? "v2/AccountUpdatedNotification"
    : message.method === "account/login/completed"
    ? "v2/AccountLoginCompletedNotification"
    : undefined

describe("AppServer: order and protocol details", () => {
  it.effect("a pipelined sign-in is seen by the requests written after it; response, login/completed, account/updated in that order", () =>
    Effect.gen(function*() {
      const written = yield* serveLines([
        request(1, "account/login/start", { type: "apiKey", apiKey: "sk-pipelined" }),
        request(2, "getAuthStatus", {}),
        request(3, "account/read", {}),
        request(4, "account/logout"),
        request(5, "getAuthStatus", {})
      ])
      expect(written.find((m) => m.id === 2).result.authMethod).toBe("apikey")
      expect(written.find((m) => m.id === 3).result.account).toEqual({ type: "apiKey" })
      expect(written.find((m) => m.id === 5).result.authMethod).toBeNull()
      const kinds = written.map((m) => m.method ?? `answer ${m.id}`)
      const login = kinds.indexOf("answer 1")
      expect(kinds.slice(login, login + 3)).toEqual(["answer 1", "account/login/completed", "account/updated"])
      expect(written[login + 1].params).toEqual({ loginId: null, success: true, error: null })
      expect(written[login + 2].params).toEqual({ authMode: "apikey", planType: null })
      expect(kinds.indexOf("answer 1")).toBeLessThan(kinds.indexOf("answer 2"))
      // Each change is announced once, by the request that made it.
      expect(written.filter((m) => m.method === "account/updated").map((m) => m.params.authMode)).toEqual([
        "apikey",
        null
      ])
      for (const message of written) {
        expect(schemaErrors("JSONRPCMessage", message)).toEqual([])
        const schema = schemaOf(message)
        if (schema !== undefined) expect(schemaErrors(schema, message.params)).toEqual([])
      }
    }).pipe(Effect.provide(scripted(undefined, [dead()]))))

  it.effect("a request nested deeper than the limit is refused with -32600, and the server goes on", () =>
    Effect.gen(function*() {
      const deep = "[".repeat(100_000) + "]".repeat(100_000)
      const written = yield* serveLines([
        `{"id":"d1","method":"getAuthStatus","params":{"includeToken":${deep}}}`,
        `{"id":"d2","method":"account/login/start","params":{"type":"apiKey","apiKey":${deep}}}`,
        request("after", "getAuthStatus", {})
      ])
      expect(written.map((m) => [m.id, m.error?.code ?? "result"])).toEqual([["d1", -32600], ["d2", -32600], [
        "after",
        "result"
      ]])
    }).pipe(Effect.provide(scripted(undefined, [dead()]))))

  it.effect("a line longer than the limit is refused with its id, and the next line is served", () =>
    Effect.gen(function*() {
      const out = yield* Ref.make(Chunk.empty<any>())
      const write = (line: string) => Ref.update(out, Chunk.append(JSON.parse(line)))
      const long = request("long", "getAuthStatus", { padding: "x".repeat(5000) })
      // In chunks that cut lines anywhere, as a pipe does.
      const text = [
        request("init", "initialize", {}),
        long,
        "garbage without an id".repeat(400),
        request("after", "getAuthStatus", {})
      ]
        .join("\r\n") + "\n"
      const chunks = text.match(/[\s\S]{1,333}/g)!
      yield* Effect.scoped(AppServer.serve(Stream.fromIterable(chunks).pipe(AppServer.splitLines(1000)), write, info))
      const written = Chunk.toArray(yield* Ref.get(out))
      expect(written.map((m) => m.id)).toEqual(["init", "long", "after"])
      expect(written[1].error.code).toBe(-32600)
      expect(written[2].result.authMethod).toBeNull()
    }).pipe(Effect.provide(scripted(undefined, [dead()]))))

  it.effect("splitLines: lines across chunks, CRLF, a last line without newline, an oversized line kept to its start", () =>
    Effect.gen(function*() {
      const lines = yield* Stream.make("ab", "c\r\nd", "e\n", "x".repeat(30), "y".repeat(30), "\nlast").pipe(
        AppServer.splitLines(40),
        Stream.runCollect
      )
      const [first, second, oversized, last] = Chunk.toArray(lines)
      expect([first, second, last]).toEqual(["abc", "de", "last"])
      expect(oversized).toBeInstanceOf(AppServer.OversizedLine)
      expect(oversized).toMatchObject({ length: 60 })
      expect((oversized as AppServer.OversizedLine).prefix.length).toBeLessThanOrEqual(1024)
    }))

  it.effect("backpressure: while answers are not written, no more than maxPending requests are read", () =>
    Effect.gen(function*() {
      const drained = yield* Deferred.make<void>()
      const blocked = yield* Deferred.make<void>()
      let writes = 0
      let pulled = 0
      const write = (line: string) =>
        Effect.suspend(() => {
          if (JSON.parse(line).id === "init") return Effect.void
          writes++
          return Effect.zipRight(
            writes === 4 ? Deferred.succeed(blocked, undefined) : Effect.void,
            Deferred.await(drained)
          )
        })
      const lines = [
        request("init", "initialize", {}),
        ...Array.from({ length: 100 }, (_, i) => request(i, "getAuthStatus", {}))
      ]
      const input = Stream.fromIterable(lines).pipe(Stream.tap(() => Effect.sync(() => pulled++)), Stream.rechunk(1))
      const fiber = yield* Effect.fork(Effect.scoped(AppServer.serve(input, write, info, { maxPending: 4 })))
      yield* Deferred.await(blocked)
      yield* Effect.repeatN(Effect.yieldNow(), 50)
      // initialize, the 4 requests answered, and the one waiting for a slot.
      expect(pulled).toBeLessThanOrEqual(6)
      yield* Deferred.succeed(drained, undefined)
      yield* Fiber.join(fiber)
      expect(pulled).toBe(101)
      expect(writes).toBe(100)
    }).pipe(Effect.provide(scripted(undefined, [dead()]))))
})

describe("AppServer.serveWhileStarting", () => {
  const request = (id: string, method: string, params: object = {}) => JSON.stringify({ id, method, params })

  it.scoped("answers initialize before its services are built; the account's requests wait for them, then are answered", () =>
    Effect.gen(function*() {
      const built = yield* Deferred.make<void>()
      const input = yield* Queue.unbounded<string>()
      const out = yield* Queue.unbounded<any>()
      const services = Deferred.await(built).pipe(Effect.zipRight(Layer.build(scripted(apiKeyJson(), []))))
      yield* AppServer.serveWhileStarting(
        Stream.fromQueue(input),
        (line) => Queue.offer(out, JSON.parse(line)),
        info,
        services
      )
        .pipe(Effect.forkScoped)

      yield* Queue.offer(input, request("init", "initialize"))
      expect((yield* Queue.take(out)).id).toBe("init")
      yield* Queue.offer(input, request("status", "getAuthStatus"))
      yield* Queue.offer(input, request("unknown", "nope"))
      // Not an account request: answered at once, while the status waits for the services.
      expect((yield* Queue.take(out)).id).toBe("unknown")
      for (let i = 0; i < 100; i++) yield* Effect.yieldNow()
      expect(yield* Queue.size(out)).toBe(0)

      yield* Deferred.succeed(built, undefined)
      expect(yield* Queue.take(out)).toEqual({
        id: "status",
        result: { authMethod: "apikey", authToken: null, requiresOpenaiAuth: true }
      })
    }))

  it.scoped("services that cannot be built end the server with their error, though its input goes on", () =>
    Effect.gen(function*() {
      const input = Stream.make(request("init", "initialize")).pipe(Stream.concat(Stream.never))
      const outcome = yield* AppServer.serveWhileStarting(
        input,
        () => Effect.void,
        info,
        Effect.fail("no configuration" as const)
      )
        .pipe(Effect.flip)
      expect(outcome).toBe("no configuration")
    }))
})

describe("AppServer: answers in the order requests came", () => {
  const statusRequest = (id: number, params: object = {}) => JSON.stringify({ id, method: "getAuthStatus", params })

  it.scoped("50 status requests read while the services are still being built are answered in request order", () =>
    Effect.gen(function*() {
      const built = yield* Deferred.make<void>()
      const input = yield* Queue.unbounded<string>()
      const out = yield* Queue.unbounded<any>()
      const services = Deferred.await(built).pipe(Effect.zipRight(Layer.build(scripted(apiKeyJson(), []))))
      yield* AppServer.serveWhileStarting(
        Stream.fromQueue(input),
        (line) => Queue.offer(out, JSON.parse(line)),
        info,
        services
      )
        .pipe(Effect.forkScoped)
      yield* Queue.offer(input, request("init", "initialize", {}))
      expect((yield* Queue.take(out)).id).toBe("init")
      for (let i = 1; i <= 50; i++) yield* Queue.offer(input, statusRequest(i))
      for (let i = 0; i < 200; i++) yield* Effect.yieldNow()
      yield* Deferred.succeed(built, undefined)
      const answers = yield* Effect.forEach(Array.from({ length: 50 }), () => Queue.take(out))
      expect(answers.map((m) => m.id)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1))
      expect(answers.every((m) => m.result.authMethod === "apikey")).toBe(true)
    }))

  it.scoped("50 status requests that join one refresh are answered in request order, after exactly one token request", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const layer = scripted(chatgptJson({ expiresIn: -60_000 }), [
        Effect.zipRight(Deferred.await(gate), rotated("access-new", "refresh-new"))
      ])
      const context = yield* Layer.build(layer)
      const input = yield* Queue.unbounded<string>()
      const out = yield* Queue.unbounded<any>()
      yield* AppServer.serve(Stream.fromQueue(input), (line) => Queue.offer(out, JSON.parse(line)), info).pipe(
        Effect.provide(context),
        Effect.forkScoped
      )
      yield* Queue.offer(input, request("init", "initialize", {}))
      expect((yield* Queue.take(out)).id).toBe("init")
      for (let i = 1; i <= 50; i++) {
        yield* Queue.offer(input, statusRequest(i, { includeToken: true, refreshToken: true }))
      }
      for (let i = 0; i < 200; i++) yield* Effect.yieldNow()
      expect(yield* Queue.size(out)).toBe(0)
      yield* Deferred.succeed(gate, undefined)
      // The new token is a new snapshot, announced with account/updated: only the answers are counted.
      const answers: Array<any> = []
      while (answers.length < 50) {
        const message = yield* Queue.take(out)
        if (message.id !== undefined) answers.push(message)
      }
      expect(answers.map((m) => m.id)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1))
      expect(answers.every((m) => m.result.authToken === "access-new")).toBe(true)
      expect(yield* Effect.provide(callCount, context)).toBe(1)
    }))
})
