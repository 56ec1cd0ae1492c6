/**
 * The behavioural contract of the library, written once with no Effect in it and run against each
 * edition through its adapter (edition.d.ts): storms, poison and its clearing, backoff, managers sharing
 * a CODEX_HOME or a database, recovery from a 401, a browser sign-in, and the secrets audit. The servers
 * are plain node:http (servers.ts) and time is the edition's test clock, so nothing waits on real time.
 */
import { clients } from "./clients.js"
import { makeContext } from "./context.js"
import type { Scenarios } from "./edition.js"
import { polling } from "./polling.js"
import { sharing } from "./sharing.js"

export const scenarios: Scenarios = (edition, runner) => {
  const context = makeContext(edition, runner)
  polling(context)
  sharing(context)
  clients(context)
}
