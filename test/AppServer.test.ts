import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, FastCheck as fc, Ref, Stream } from "effect"
import * as AppServer from "../src/AppServer.js"
import { chatgptJson } from "./support/fixtures.js"
import { dead, scripted } from "./support/manager.js"

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

type Expected = { readonly answer: false } | { readonly answer: true; readonly id: unknown; readonly codes: ReadonlyArray<number | "result"> }

/** The protocol's rules, written independently of the server. */
const oracle = (line: string): Expected => {
  if (line.trim() === "") return { answer: false }
  let message: any
  try {
    message = JSON.parse(line)
  } catch {
    return { answer: true, id: null, codes: [-32700] }
  }
  if (message === null || typeof message !== "object" || Array.isArray(message)) return { answer: true, id: null, codes: [-32600] }
  const { id, method } = message
  const validId = typeof id === "string" || (typeof id === "number" && Number.isSafeInteger(id))
  if (id !== undefined && !validId) return { answer: true, id: null, codes: [-32600] }
  if (typeof method !== "string") {
    if (id !== undefined && ("result" in message || "error" in message)) return { answer: false }
    return { answer: true, id: id ?? null, codes: [-32600] }
  }
  if (id === undefined) return { answer: false }
  if (method === "initialize") return { answer: true, id, codes: [-32600] }
  if (["getAuthStatus", "account/read", "account/login/start", "account/logout"].includes(method)) {
    return { answer: true, id, codes: ["result", -32602] }
  }
  return { answer: true, id, codes: [-32601] }
}

const noNewline = (text: string) => text.replace(/[\r\n]/g, " ")
const methods = fc.constantFrom("getAuthStatus", "account/read", "account/login/start", "account/logout", "initialize", "nope", "")
const ids = fc.oneof(fc.string(), fc.integer(), fc.double(), fc.constant(null), fc.boolean(), fc.object())
const line = fc.oneof(
  fc.string().map(noNewline),
  fc.uint8Array({ maxLength: 64 }).map((bytes) => noNewline(Buffer.from(bytes).toString("latin1"))),
  fc.jsonValue().map((value) => JSON.stringify(value)),
  fc.record({ id: ids, method: methods, params: fc.jsonValue() }, { requiredKeys: [] }).map((m) => JSON.stringify(m)),
  fc.record({ id: fc.oneof(fc.string(), fc.integer()), method: methods, params: fc.dictionary(fc.constantFrom("includeToken", "refreshToken", "type", "apiKey", "accessToken", "chatgptAccountId"), fc.jsonValue()) })
    .map((m) => JSON.stringify(m))
)

describe("AppServer under random input (fast-check)", () => {
  it.effect.prop("every line gets the answer the protocol's rules call for, and the server never stops", [fc.array(line, { maxLength: 25 })], ([lines]) =>
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
      for (const message of written) expect(message).not.toHaveProperty("jsonrpc")
    }).pipe(Effect.provide(scripted(chatgptJson(), [dead()]))), { fastCheck: { numRuns: 150 } })
})
