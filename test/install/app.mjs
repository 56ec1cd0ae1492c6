// A user's program over the installed package: `apikey KEY` signs in with an API key, `refresh` refreshes
// the stored ChatGPT tokens (CODEX_HOME and CODEX_REFRESH_TOKEN_URL_OVERRIDE from the environment).
// Prints what the manager then says.
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Redacted } from "effect"
import { AuthManager, layerNode } from "effect-auth-manager"

const [command, argument] = process.argv.slice(2)
const program = Effect.gen(function*() {
  const auth = yield* AuthManager
  if (command === "apikey") yield* auth.loginWithApiKey(Redacted.make(argument))
  else if (command === "refresh") yield* auth.refresh
  else return yield* Effect.dieMessage(`unknown command ${command}`)
  const state = yield* auth.state
  yield* Console.log(JSON.stringify({ method: state.method, status: state.status }))
})
NodeRuntime.runMain(program.pipe(Effect.provide(layerNode)))
