/**
 * Requests the app server sends its client (`account/chatgptAuthTokens/refresh`),
 * and the matching of the client's responses to them by id.
 */
import { Deferred, Effect, Either, HashMap, Option, Ref } from "effect"
import { scrubText } from "../../errors/Errors.js"
import { type ResponseError } from "../ResponseError.js"
import * as Wire from "./wire.js"

type RequestId = string | number

interface Outgoing {
  readonly next: number
  readonly pending: HashMap.HashMap<RequestId, Deferred.Deferred<unknown, Wire.ClientRequestFailure>>
  /** The client's input has ended: no answer can come any more. */
  readonly closed: boolean
}

const gone = new Wire.ClientRequestFailure({ reason: "gone", message: "the client disconnected before answering" })
const disconnected = new Wire.ClientRequestFailure({ reason: "gone", message: "the client is no longer connected" })

/**
 * Requests this server sends the client: numbered from 0, each waiting for the response with its
 * id. A response to no request of ours (unknown, or already given up on) is logged and dropped.
 */
export const makeOutgoing = (send: (message: object) => Effect.Effect<void>) =>
  Effect.gen(function*() {
    const state = yield* Ref.make<Outgoing>({ next: 0, pending: HashMap.empty(), closed: false })

    const request: Wire.ClientRequest = (method, params) =>
      Effect.flatMap(Deferred.make<unknown, Wire.ClientRequestFailure>(), (answer) =>
        Effect.acquireUseRelease(
          Ref.modify(
            state,
            (s): readonly [RequestId | null, Outgoing] =>
              s.closed
                ? [null, s]
                : [s.next, { ...s, next: s.next + 1, pending: HashMap.set(s.pending, s.next, answer) }]
          ),
          (id) =>
            id === null
              ? Effect.fail(disconnected)
              : Effect.zipRight(send({ id, method, params }), Deferred.await(answer)),
          // Answered, or given up on (the caller's time bound): a late answer finds nothing to complete.
          (id) =>
            id === null ? Effect.void : Ref.update(state, (s) => ({ ...s, pending: HashMap.remove(s.pending, id) }))
        ))

    const answer = (id: RequestId, outcome: Either.Either<unknown, ResponseError>) =>
      Effect.flatMap(Ref.get(state), (s) =>
        Option.match(HashMap.get(s.pending, id), {
          onNone: () =>
            Effect.logDebug("Ignored a response to no request of this server").pipe(Effect.annotateLogs({ id })),
          onSome: (waiting) =>
            Either.match(outcome, {
              onLeft: (error) =>
                Deferred.fail(
                  waiting,
                  new Wire.ClientRequestFailure({
                    reason: "error",
                    message: `the client answered with an error${error.code === null ? "" : ` (${error.code})`}: ${
                      scrubText(error.message, [], 200)
                    }`
                  })
                ),
              onRight: (result) => Deferred.succeed(waiting, result)
            })
        }))

    const close = Effect.flatMap(
      Ref.modify(state, (s) => [s.pending, { ...s, closed: true, pending: HashMap.empty() }]),
      (pending) => Effect.forEach(HashMap.values(pending), (waiting) => Deferred.fail(waiting, gone), { discard: true })
    )

    return { request, answer, close }
  })
