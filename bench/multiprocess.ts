/**
 * Requests that reach the token endpoint when K app-server processes share
 * one CODEX_HOME: on one poisoned snapshot (each process polls 50 times with
 * refreshToken: true), and during a 10 s outage (each polls every 20 ms).
 * Run `npm run build` first; `npm run bench:multiprocess`.
 */
import { writeFileSync } from "node:fs"
import * as TokenEndpoint from "../src/testing/TokenEndpoint.js"
import { chatgptJson } from "../test/support/fixtures.js"
import { appServer, cleanup, endpoint, type RunningProcess, tempHome } from "../test/support/processes.js"

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const poll = (server: RunningProcess) => server.request("getAuthStatus", { includeToken: true, refreshToken: true })

const measure = async (
  k: number,
  behaviour: TokenEndpoint.Behaviour,
  run: (server: RunningProcess) => Promise<void>
) => {
  const tokens = await endpoint(behaviour)
  const home = tempHome()
  writeFileSync(`${home}/auth.json`, JSON.stringify(chatgptJson({ now: Date.now() })))
  const servers = await Promise.all(
    Array.from({ length: k }, () => appServer({ codexHome: home, tokenUrl: tokens.url }))
  )
  await Promise.all(servers.map(run))
  const count = await tokens.count()
  await cleanup()
  return count
}

const outageSeconds = Number(process.env.OUTAGE_SECONDS ?? 10)
const rows: Array<string> = []
for (const k of [1, 2, 4, 8]) {
  const poisoned = await measure(k, TokenEndpoint.codedError(401, "refresh_token_reused"), async (server) => {
    for (let i = 0; i < 50; i++) await poll(server)
  })
  let polls = 0
  const outage = await measure(k, TokenEndpoint.codedError(503, "unavailable"), async (server) => {
    const end = Date.now() + outageSeconds * 1000
    while (Date.now() < end) {
      await poll(server)
      polls++
      await sleep(20)
    }
  })
  rows.push(`| ${k} | ${k * 50} | ${poisoned} | ${polls} | ${outage} |`)
  console.error(`K=${k}: poisoned ${poisoned}, outage ${outage} (${polls} polls)`)
}

console.log(`node ${process.version}; app-server bundle; outage ${outageSeconds} s, each process polling every 20 ms\n`)
console.log("| processes | polls on a dead token | requests | polls during the outage | requests |")
console.log("|---|---|---|---|---|")
for (const row of rows) console.log(row)
