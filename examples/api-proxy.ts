/**
 * A server that calls an API with the signed-in user's credentials: `GET /me`
 * here asks `$API_BASE_URL/me` through the authorized client and answers with
 * what the API said.
 * `API_BASE_URL=https://api.example.com PORT=3000 npx tsx examples/api-proxy.ts` (reads CODEX_HOME).
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Config, Effect, Layer } from "effect"
import { AuthHttpClient, layerNode } from "effect-auth-manager"
import { createServer } from "node:http"

// The authorized client, pointed at the API: every request carries `Authorization: Bearer …`
// (and `ChatGPT-Account-Id` for ChatGPT credentials).
const ApiClient = Layer.effect(
  AuthHttpClient,
  Effect.gen(function*() {
    const baseUrl = yield* Config.string("API_BASE_URL")
    const client = yield* AuthHttpClient.make
    return client.pipe(HttpClient.mapRequest(HttpClientRequest.prependUrl(baseUrl)))
  })
).pipe(Layer.provide(Layer.merge(layerNode, NodeHttpClient.layerUndici)))

const me = Effect.gen(function*() {
  const api = yield* AuthHttpClient
  // A 401 (a token revoked before its expiry) is recovered from once: newer credentials on disk,
  // or one refresh shared by every request that got it; a second 401 is answered as it came.
  const response = yield* api.get("/me")
  return yield* HttpServerResponse.json(yield* response.json, { status: response.status })
}).pipe(
  Effect.catchTags({
    // Nobody is signed in, or the refresh token is dead: the message says to sign in (again).
    CredentialsUnavailableError: (error) => HttpServerResponse.json({ error: error.message }, { status: 401 }),
    RequestError: (error) => HttpServerResponse.json({ error: error.message }, { status: 502 }),
    ResponseError: (error) => HttpServerResponse.json({ error: error.message }, { status: 502 })
  })
)

const router = HttpRouter.empty.pipe(HttpRouter.get("/me", me))

const server = HttpServer.serve(router).pipe(
  HttpServer.withLogAddress,
  Layer.provide(NodeHttpServer.layerConfig(createServer, {
    port: Config.integer("PORT").pipe(Config.withDefault(3000)),
    host: Config.succeed("127.0.0.1")
  })),
  Layer.provide(ApiClient)
)

NodeRuntime.runMain(Layer.launch(server))
