/**
 * The auth part of the Codex app-server wire protocol over any
 * line transport: newline-delimited JSON messages, `{id, method, params}`
 * requests, `{id, result}` / `{id, error}` responses, `{method, params}`
 * notifications, and no `"jsonrpc"` field, both ways: the server sends the
 * client one request of its own, `account/chatgptAuthTokens/refresh`, and
 * matches the answer by id. `bin/app-server.ts` runs it on stdio.
 */
import { nestingDepth } from "@effect-auth-manager/core/rawJson"
import { type Context, Data, Deferred, Effect, Either, FiberSet, Ref, Stream } from "effect"
import type { AuthManager } from "../manager/AuthManager.js"
import type * as AppServerAccount from "./internal/account.js"
import { makeOutgoing } from "./internal/outgoing.js"
import * as Wire from "./internal/wire.js"
import { type ResponseError, responseError } from "./ResponseError.js"

/** JSON-RPC 2.0 error codes. */
export const ErrorCode = Wire.ErrorCode

export type RequestId = string | number

/** What `initialize` reports about this server. */
export interface ServerInfo {
  readonly codexHome: string
  readonly version: string
  readonly platformOs: string
  readonly platformFamily: string
}

type Handler = (method: string, params: unknown) => Effect.Effect<readonly [unknown, Wire.After], Wire.RpcFailure>

type Incoming =
  | { readonly _tag: "Request"; readonly id: RequestId; readonly method: string; readonly params: unknown }
  | { readonly _tag: "Notification"; readonly method: string }
  | { readonly _tag: "Response"; readonly id: RequestId; readonly outcome: Either.Either<unknown, ResponseError> }
  | { readonly _tag: "Ignored" }
  | { readonly _tag: "Invalid"; readonly id: RequestId | null; readonly code: number; readonly message: string }

const isRequestId = (id: unknown): id is RequestId =>
  typeof id === "string" || (typeof id === "number" && Number.isSafeInteger(id))

const leadingId = /^\s*\{\s*"id"\s*:\s*("(?:[^"\\\n]|\\.){0,256}"|-?\d{1,16})\s*[,}]/

/**
 * The id of a line that could not be read as a message, when it opens with
 * one (`{"id": …`): the error can then be sent to the request it answers.
 */
export const recoverId = (line: string): RequestId | null => {
  const match = leadingId.exec(line.slice(0, 1024))
  if (match === null) return null
  try {
    const id: unknown = JSON.parse(match[1]!)
    return isRequestId(id) ? id : null
  } catch {
    return null
  }
}

/** The deepest nesting of arrays and objects a message may have. */
export const maxNesting = 64

/** Reads one line as a message of the protocol. */
export const parseLine = (line: string): Incoming => {
  let message: unknown
  try {
    message = JSON.parse(line)
  } catch {
    return {
      _tag: "Invalid",
      id: recoverId(line),
      code: ErrorCode.parseError,
      message: "Parse error: the line is not valid JSON"
    }
  }
  if (message === null || typeof message !== "object" || Array.isArray(message)) {
    return {
      _tag: "Invalid",
      id: null,
      code: ErrorCode.invalidRequest,
      message: "Invalid request: a message is a JSON object"
    }
  }
  const { id, method, params } = message as {
    readonly id?: unknown
    readonly method?: unknown
    readonly params?: unknown
  }
  if (id !== undefined && !isRequestId(id)) {
    return {
      _tag: "Invalid",
      id: null,
      code: ErrorCode.invalidRequest,
      message: "Invalid request: id must be a string or an integer"
    }
  }
  // Deeper values would only make the decoders recurse: no message of the protocol nests like this.
  if (nestingDepth(line) > maxNesting) {
    return {
      _tag: "Invalid",
      id: id ?? null,
      code: ErrorCode.invalidRequest,
      message: `Invalid request: nested more than ${maxNesting} levels deep`
    }
  }
  if (typeof method !== "string") {
    // A response to a request of ours (`account/chatgptAuthTokens/refresh`), matched by its id.
    if (id !== undefined && "error" in message) {
      return { _tag: "Response", id, outcome: Either.left(responseError((message as { error: unknown }).error)) }
    }
    if (id !== undefined && "result" in message) {
      return { _tag: "Response", id, outcome: Either.right((message as { result: unknown }).result) }
    }
    return {
      _tag: "Invalid",
      id: id ?? null,
      code: ErrorCode.invalidRequest,
      message: "Invalid request: method must be a string"
    }
  }
  return id === undefined ? { _tag: "Notification", method } : { _tag: "Request", id, method, params }
}

/** A line longer than the server reads: only its start is kept, to answer the request it opens. */
export class OversizedLine
  extends Data.TaggedClass("OversizedLine")<{ readonly prefix: string; readonly length: number }>
{}

const endOfInput = Symbol("endOfInput")

interface Splitter {
  // Appended to in place: each line starts a new array.
  readonly parts: Array<string>
  readonly length: number
  readonly prefix: string | null
}

/**
 * Splits text into lines (`\n` or `\r\n`) of at most `maxLength` characters.
 * A longer line is never held in memory: it becomes an `OversizedLine` with
 * its first kilobyte, and the rest of it is skipped as it arrives.
 */
export const splitLines =
  (maxLength: number) => <E, R>(text: Stream.Stream<string, E, R>): Stream.Stream<string | OversizedLine, E, R> =>
    Stream.suspend(() =>
      Stream.concat(text, Stream.succeed(endOfInput)).pipe(
        Stream.mapAccum(
          { parts: [], length: 0, prefix: null } as Splitter,
          (state, chunk): readonly [Splitter, ReadonlyArray<string | OversizedLine>] => {
            const out: Array<string | OversizedLine> = []
            let { length, parts, prefix } = state
            const endLine = () => {
              if (prefix !== null) out.push(new OversizedLine({ prefix, length }))
              else {
                const line = parts.join("")
                out.push(line.endsWith("\r") ? line.slice(0, -1) : line)
              }
              parts = []
              length = 0
              prefix = null
            }
            if (chunk === endOfInput) {
              if (length > 0 || prefix !== null) endLine()
              return [{ parts: [], length: 0, prefix: null }, out]
            }
            let start = 0
            for (;;) {
              const newline = chunk.indexOf("\n", start)
              const piece = newline === -1 ? chunk.slice(start) : chunk.slice(start, newline)
              if (prefix === null && length + piece.length > maxLength) {
                prefix = (parts.join("") + piece.slice(0, 1024)).slice(0, 1024)
                parts = []
              } else if (prefix === null) parts.push(piece)
              length += piece.length
              if (newline === -1) break
              endLine()
              start = newline + 1
            }
            return [{ parts, length, prefix }, out]
          }
        ),
        Stream.mapConcat((lines) => lines)
      )
    )

/** How much `serve` takes in before it waits for its answers to be written. */
export interface ServeOptions {
  /** Requests read but not yet answered (and written) before reading stops (default 64). */
  readonly maxPending?: number
}

/** The requests that change the credentials: every later request waits for them (Codex answers in order). */
const stateChanging = new Set(["account/login/start", "account/login/cancel", "account/logout"])

/** The requests answered from the account (every one but `initialize`). */
const accountMethods = new Set(["getAuthStatus", "account/read", ...stateChanging])

/**
 * Serves the protocol over `input` lines, writing each outgoing message (one
 * JSON line) with `write`, which should complete once the line is handed
 * over (that is the backpressure: at most `maxPending` requests wait for
 * their answers before reading stops). A request that signs in or out runs
 * after every earlier one of its kind, and every later request waits for
 * it; the others run concurrently, so a slow refresh delays only the
 * answers that asked for it. Returns once the input ends and every request
 * has been answered.
 */
export const serve = <E, R>(
  input: Stream.Stream<string | OversizedLine, E, R>,
  write: (line: string) => Effect.Effect<void>,
  info: ServerInfo,
  options: ServeOptions = {}
) =>
  Effect.flatMap(
    Effect.context<AuthManager>(),
    (services) => serveWhileStarting(input, write, info, Effect.succeed(services), options)
  )

/**
 * `serve`, answering `initialize` while `services` (the `AuthManager` and
 * the optional `SignIn`) are still being built: an editor waits for that
 * answer before anything else, and building the services reads files and
 * starts watches. Every other request waits for them. If they cannot be
 * built, the server ends with that error.
 *
 * @example
 * // The services are built in the background while the first lines are read.
 * const services = Layer.build(layer)
 * AppServer.serveWhileStarting(lines, writeLine, info, services)
 */
export const serveWhileStarting = <E, R, E2, R2>(
  input: Stream.Stream<string | OversizedLine, E, R>,
  write: (line: string) => Effect.Effect<void>,
  info: ServerInfo,
  services: Effect.Effect<Context.Context<AuthManager>, E2, R2>,
  options: ServeOptions = {}
) =>
  Effect.gen(function*() {
    const initialized = yield* Ref.make(false)
    const send = (message: object) => write(JSON.stringify(message))
    const notify = (method: string, params: object) => Effect.whenEffect(send({ method, params }), Ref.get(initialized))
    // Browser and device sign-ins save and send account/login/completed holding `announcing`.
    const announcing = yield* Effect.makeSemaphore(1)

    const initialize = (params: unknown) =>
      Effect.gen(function*() {
        if (yield* Ref.get(initialized)) {
          return yield* new Wire.RpcFailure({ code: ErrorCode.invalidRequest, message: "Already initialized" })
        }
        const { clientInfo } = yield* Wire.decodeParams(Wire.InitializeParams, params)
        yield* Ref.set(initialized, true)
        const client = clientInfo === undefined ? "" : ` ${clientInfo.name}/${clientInfo.version}`
        return {
          codexHome: info.codexHome,
          platformFamily: info.platformFamily,
          platformOs: info.platformOs,
          userAgent: `effect-auth-manager/${info.version} (${info.platformOs}; ${process.arch})${client}`
        }
      })

    const noAnnouncement: Wire.After = Effect.void
    // Built beside the reading of the first lines: `initialize` waits for none of it. The account's
    // requests are a module of their own, loaded then (a bundle evaluates it only then).
    const outgoing = yield* makeOutgoing(send)
    const connection: AppServerAccount.Connection = { send, notify, announcing, request: outgoing.request }
    // The requests that arrive meanwhile wait on a Deferred, which wakes its waiters in the order
    // they came (a fiber's joiners are woken last first, and so would their answers be written).
    const ready = yield* Deferred.make<Handler, E2>()
    yield* services.pipe(
      Effect.flatMap((context) =>
        Effect.flatMap(
          Effect.promise(() => import("./internal/account.js")),
          (module) => Effect.provide(module.make(connection), context)
        )
      ),
      Effect.intoDeferred(ready),
      Effect.forkScoped
    )
    const account = Deferred.await(ready).pipe(Effect.orDie)

    const dispatch = (
      method: string,
      params: unknown
    ): Effect.Effect<readonly [unknown, Wire.After], Wire.RpcFailure> =>
      accountMethods.has(method)
        ? Effect.flatMap(account, (handle) => handle(method, params))
        : Effect.fail(
          new Wire.RpcFailure({ code: ErrorCode.methodNotFound, message: `Method not found: ${Wire.quoted(method)}` })
        )

    const answer = (id: RequestId, handler: Effect.Effect<readonly [unknown, Wire.After], Wire.RpcFailure>) =>
      Effect.flatMap(Effect.either(handler), (outcome) =>
        Either.match(outcome, {
          onLeft: (failure) => send({ id, error: { code: failure.code, message: failure.message } }),
          onRight: ([result, after]) => Effect.zipRight(send({ id, result }), after)
        }))

    const refuse = (id: RequestId | null, code: number, message: string) =>
      id === null
        // The Codex schema has no error without an id: a line that names none is only logged.
        ? Effect.logWarning("Ignored a line that is not a request").pipe(
          Effect.annotateLogs({ code, problem: message })
        )
        : send({ id, error: { code, message } })

    const fibers = yield* FiberSet.make()
    const pending = yield* Effect.makeSemaphore(options.maxPending ?? 64)
    // The last state-changing request received; every later request waits for it to be answered.
    const settled = yield* Deferred.make<void>()
    yield* Deferred.succeed(settled, undefined)
    let barrier = settled

    const schedule = (message: Extract<Incoming, { readonly _tag: "Request" }>) =>
      Effect.gen(function*() {
        const previous = barrier
        const changes = stateChanging.has(message.method)
        const done = changes ? yield* Deferred.make<void>() : undefined
        if (done !== undefined) barrier = done
        yield* pending.take(1)
        const handled = answer(message.id, dispatch(message.method, message.params))
        yield* FiberSet.run(
          fibers,
          Deferred.await(previous).pipe(
            Effect.zipRight(changes ? announcing.withPermits(1)(handled) : handled),
            Effect.ensuring(
              done === undefined
                ? pending.release(1)
                : Effect.zipRight(Deferred.succeed(done, undefined), pending.release(1))
            )
          )
        )
      })

    const reading = input.pipe(
      Stream.runForEach((line) => {
        if (typeof line !== "string") {
          return refuse(
            recoverId(line.prefix),
            ErrorCode.invalidRequest,
            `Invalid request: the line is ${line.length} characters long, more than this server reads`
          )
        }
        if (line.trim().length === 0) return Effect.void
        const message = parseLine(line)
        switch (message._tag) {
          case "Invalid":
            return refuse(message.id, message.code, message.message)
          case "Response":
            return outgoing.answer(message.id, message.outcome)
          case "Notification":
          case "Ignored":
            return Effect.void
          case "Request":
            // Decided in line, in the order the lines came: a request sent before `initialize`
            // is refused even if `initialize` follows it before it would have run.
            if (message.method === "initialize") {
              return answer(
                message.id,
                Effect.map(initialize(message.params), (result) => [result, noAnnouncement] as const)
              )
            }
            return Effect.flatMap(Ref.get(initialized), (ready) =>
              ready
                ? schedule(message)
                : refuse(message.id, ErrorCode.invalidRequest, "Not initialized"))
        }
      })
    )
    // Services that cannot be built end the server with their error, whatever it was reading.
    // Once the input ends, no answer to a request of ours can come.
    yield* Effect.zip(Effect.ensuring(reading, outgoing.close), Deferred.await(ready), { concurrent: true })
    yield* FiberSet.awaitEmpty(fibers)
  })
