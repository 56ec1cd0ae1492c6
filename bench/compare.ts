/**
 * `npm run bench`: this library side by side with what users would pick
 * instead, in one run on one machine. Writes bench/RESULTS.md and
 * bench/requests-over-time.svg. Run with `node --expose-gc` (the npm script does).
 */
import { Effect } from "effect"
import { execFileSync } from "node:child_process"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import * as TokenEndpoint from "../src/testing/TokenEndpoint.js"
import { cleanup, endpoint } from "../test/support/processes.js"
import { type Contender, contenders, expiredAccessToken, firstRefreshToken } from "./contenders.js"
import { hotPath } from "./hotpath.js"
import { startup, table as startupTable } from "./startup.js"

const runs = Number(process.env.BENCH_RUNS ?? 3)
const outageMs = Number(process.env.BENCH_OUTAGE_MS ?? 10_000)
const healthyMs = Number(process.env.BENCH_HEALTHY_MS ?? 10_000)
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!
const log = (text: string) => process.stderr.write(`${text}\n`)

// ---------------------------------------------------------------------------
// 1. Storm after the refresh token dies: P pollers × M polls.

const storm = async (contender: Contender, pollers: number, polls: number) => {
  const tokens = await endpoint(TokenEndpoint.codedError(401, "refresh_token_reused"))
  const client = await contender.make(tokens.url, expiredAccessToken())
  const started = Date.now()
  await Promise.all(Array.from({ length: pollers }, async () => {
    for (let i = 0; i < polls; i++) await client.poll()
  }))
  const requests = await tokens.requests()
  await client.close()
  await cleanup()
  return { count: requests.length, times: requests.map((r) => r.at - started) }
}

// ---------------------------------------------------------------------------
// 2. A transient outage: 503 for outageMs of polling at 100 polls/s, then a healthy provider.

const outage = async (contender: Contender) => {
  const tokens = await endpoint(TokenEndpoint.codedError(503, "temporarily_unavailable"))
  const initial = expiredAccessToken()
  const client = await contender.make(tokens.url, initial)
  const started = Date.now()
  let recoveredAt = Infinity
  let freshAt: number | null = null
  let duringOutage = 0
  const recovery = (async () => {
    await sleep(outageMs)
    duringOutage = await tokens.count()
    await tokens.setBehaviour(
      await Effect.runPromise(TokenEndpoint.rotating(firstRefreshToken, 3600, { idToken: false }))
    )
    recoveredAt = Date.now()
  })()
  while (freshAt === null && Date.now() < started + outageMs + 60_000) {
    const token = await client.poll()
    if (Date.now() >= recoveredAt && token !== null && token !== initial) freshAt = Date.now()
    await sleep(10)
  }
  await recovery
  const requests = await tokens.requests()
  await client.close()
  return {
    duringOutage,
    recoveryMs: freshAt === null ? null : freshAt - recoveredAt,
    times: requests.map((r) => r.at - started)
  }
}

// ---------------------------------------------------------------------------
// 3. Healthy polling, each poll asking for a refresh, for healthyMs.

const healthy = async (contender: Contender) => {
  const tokens = await endpoint(TokenEndpoint.rotating(firstRefreshToken, 3600, { idToken: false }))
  const client = await contender.make(tokens.url, expiredAccessToken())
  const end = Date.now() + healthyMs
  let polls = 0
  while (Date.now() < end) {
    await client.pollRefresh()
    polls++
    await sleep(10)
  }
  const count = await tokens.count()
  await client.close()
  return { count, polls }
}

// ---------------------------------------------------------------------------
// The chart: cumulative requests over time, one line per contender.

const colors = ["#1b7f3b", "#c0392b", "#2c6fbb", "#8e44ad"]
const chart = (
  panels: ReadonlyArray<
    { title: string; seconds: number; lines: ReadonlyArray<{ name: string; times: ReadonlyArray<number> }> }
  >
) => {
  const width = 460
  const height = 300
  const pad = { left: 56, right: 16, top: 36, bottom: 44 }
  const plotW = width - pad.left - pad.right
  const plotH = height - pad.top - pad.bottom
  const maxLog = 5 // up to 100,000 requests, log scale; none and one both sit on the baseline
  const y = (count: number) => pad.top + plotH - (Math.log10(Math.max(1, count)) / maxLog) * plotH
  const svgPanels = panels.map((panel, index) => {
    const x = (ms: number) => pad.left + (Math.min(ms, panel.seconds * 1000) / (panel.seconds * 1000)) * plotW
    const grid = [0, 1, 2, 3, 4, 5].map((p) =>
      `<line x1="${pad.left}" x2="${pad.left + plotW}" y1="${y(10 ** p)}" y2="${y(10 ** p)}" stroke="#ddd"/>` +
      `<text x="${pad.left - 6}" y="${y(10 ** p) + 4}" text-anchor="end" font-size="11">${
        (10 ** p).toLocaleString("en")
      }</text>`
    ).join("")
    const lines = panel.lines.map((line, i) => {
      const points = [
        `${x(0)},${y(0)}`,
        ...line.times.map((t, n) => `${x(t)},${y(n + 1)}`),
        `${x(panel.seconds * 1000)},${y(line.times.length)}`
      ]
      return `<polyline fill="none" stroke="${colors[i]}" stroke-width="2" points="${points.join(" ")}"/>`
    }).join("")
    const legend = panel.lines.map((line, i) =>
      `<text x="${pad.left + 8}" y="${pad.top + 14 + i * 14}" font-size="11" fill="${colors[i]}">${line.name}: ${
        line.times.length.toLocaleString("en")
      }</text>`
    ).join("")
    return `<g transform="translate(${index * width},0)">` +
      `<text x="${width / 2}" y="20" text-anchor="middle" font-size="13" font-weight="bold">${panel.title}</text>` +
      grid + lines + legend +
      `<text x="${pad.left + plotW / 2}" y="${
        height - 10
      }" text-anchor="middle" font-size="11">seconds (0–${panel.seconds})</text>` +
      `<text x="14" y="${pad.top + plotH / 2}" font-size="11" transform="rotate(-90 14 ${
        pad.top + plotH / 2
      })" text-anchor="middle">requests so far (log)</text>` +
      `</g>`
  }).join("")
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${
    width * panels.length
  }" height="${height}" font-family="sans-serif">` +
    `<rect width="100%" height="100%" fill="white"/>${svgPanels}</svg>\n`
}

// ---------------------------------------------------------------------------

const stormRows: Array<string> = []
let stormChart: Array<{ name: string; times: ReadonlyArray<number> }> = []
for (const pollers of [1, 10, 100]) {
  const cells: Array<string> = []
  for (const contender of contenders) {
    const results: Array<Awaited<ReturnType<typeof storm>>> = []
    for (let run = 0; run < runs; run++) results.push(await storm(contender, pollers, 100))
    cells.push(median(results.map((r) => r.count)).toLocaleString("en"))
    if (pollers === 10) stormChart = [...stormChart, { name: contender.name, times: results[0]!.times }]
    log(`storm P=${pollers} ${contender.name}: ${results.map((r) => r.count).join(", ")}`)
  }
  stormRows.push(`| ${pollers} × 100 | ${cells.join(" | ")} |`)
}

const outageResults: Array<Array<Awaited<ReturnType<typeof outage>>>> = contenders.map(() => [])
for (let run = 0; run < runs; run++) {
  // The contenders run side by side, each against its own endpoint; all are closed together.
  const results = await Promise.all(contenders.map(outage))
  await cleanup()
  results.forEach((result, i) => outageResults[i]!.push(result))
  log(`outage run ${run + 1}: ${results.map((r) => `${r.duringOutage} / ${r.recoveryMs} ms`).join("; ")}`)
}

const healthyResults: Array<Array<Awaited<ReturnType<typeof healthy>>>> = contenders.map(() => [])
for (let run = 0; run < runs; run++) {
  const results = await Promise.all(contenders.map(healthy))
  await cleanup()
  results.forEach((result, i) => healthyResults[i]!.push(result))
  log(`healthy run ${run + 1}: ${results.map((r) => `${r.count}/${r.polls}`).join("; ")}`)
}

const hot = await hotPath()
log(`hot path: ${JSON.stringify(hot)}`)

const start = await startup({
  rounds: Number(process.env.BENCH_STARTUP_ROUNDS ?? 30),
  codexBin: process.env.CODEX_BIN || undefined,
  codexLauncher: process.env.CODEX_LAUNCHER || undefined
})
log(`start-up: ${JSON.stringify(start)}`)

const appServer = execFileSync(process.execPath, ["--import", "tsx", join(import.meta.dirname, "app-server.ts")], {
  encoding: "utf8"
})

const header = `| | ${contenders.map((c) => c.name).join(" | ")} |\n|---|${contenders.map(() => "---").join("|")}|`
const fmtMs = (ms: number | null) => (ms === null ? "> 60 s" : `${(ms / 1000).toFixed(1)} s`)
const results = `# Benchmark results

Written by \`npm run bench\` (bench/compare.ts) on ${new Date().toISOString().slice(0, 10)}, node ${process.version},
${runs} runs per figure, medians. Each contender has its own token endpoint on 127.0.0.1. Contenders are
used as their documentation suggests (see bench/contenders.ts): \`getAuthStatus\` for this library,
\`OAuth2Client.getAccessToken()\` / \`refreshAccessToken()\` for google-auth-library 10, \`refreshTokenGrant\`
when the token set has expired for openid-client 6, and a POST on every poll for the naive refresher.

## 1. Storm after the refresh token dies (401 \`refresh_token_reused\`): requests that reach the endpoint

P concurrent pollers × 100 polls each, the access token already expired.

${header}
${stormRows.join("\n")}

## 2. Transient outage: 503 for ${outageMs / 1000} s of polling at up to 100 polls/s, then recovery

${header}
| requests during the outage | ${
  outageResults.map((r) => median(r.map((x) => x.duringOutage)).toLocaleString("en")).join(" | ")
} |
| recovery to the first fresh token | ${
  outageResults.map((r) =>
    fmtMs(
      median(r.map((x) => x.recoveryMs ?? Infinity)) === Infinity
        ? null
        : median(r.map((x) => x.recoveryMs ?? Infinity))
    )
  ).join(" | ")
} |

## 3. Healthy polling for ${healthyMs / 1000} s, every poll asking for a refresh: token rotations

${header}
| requests (polls) | ${
  healthyResults.map((r) =>
    `${median(r.map((x) => x.count)).toLocaleString("en")} (${median(r.map((x) => x.polls)).toLocaleString("en")})`
  ).join(" | ")
} |

## 4. Hot path, one process

\`getAuthStatus\` answered from memory against a bare Effect step, in the same loop shape, interleaved
(bench/hotpath.ts: ${hot.rounds} rounds of 200,000 calls each, every case once per round; the ratio is the median
of the within-round ratios).

| | calls per second | vs a bare \`Ref.get\` |
|---|---|---|
| bare Effect \`Ref.get\` | ${Math.round(hot.ref).toLocaleString("en")} | 1× |
| \`getAuthStatus({ includeToken: true })\`, healthy | ${Math.round(hot.healthy).toLocaleString("en")} | ${
  hot.healthyRatio.toFixed(1)
}× |
| \`getAuthStatus({ includeToken: true, refreshToken: true })\`, poisoned | ${
  Math.round(hot.poisoned).toLocaleString("en")
} | ${hot.poisonedRatio.toFixed(1)}× |

Heap after ${hot.calls.toLocaleString("en")} more calls (after a full GC): ${
  hot.heapGrowthKb === null ? "not measured (run with --expose-gc)" : `${hot.heapGrowthKb.toFixed(0)} KB of growth`
}.

## 5. The example app server

${appServer.trim()}

## 6. Start-up, side by side (bench/startup.ts)

Whole processes, spawn to exit (\`status\`) or to the answer to \`initialize\` (app servers); the bins run
with a warm V8 code cache, as every run after the first does.${
  process.env.CODEX_BIN ? "" : " Set CODEX_BIN to the native Codex binary to add it."
}

${startupTable(start)}

![requests over time](requests-over-time.svg)
`
// The fleet section comes from `npm run bench:fleet` (PostgreSQL replicas): kept as it is.
const resultsFile = join(import.meta.dirname, "RESULTS.md")
const previous = existsSync(resultsFile) ? readFileSync(resultsFile, "utf8") : ""
const fleetAt = previous.search(/^## \d+\. A fleet on PostgreSQL/m)
const fleet = fleetAt === -1 ? "" : `\n${previous.slice(fleetAt).replace(/^## \d+\./, "## 7.")}`
writeFileSync(resultsFile, `${results}${fleet}`)
writeFileSync(
  join(import.meta.dirname, "requests-over-time.svg"),
  chart([
    {
      title: "Dead refresh token: 10 pollers × 100 polls",
      seconds: Math.max(1, Math.ceil(Math.max(...stormChart.flatMap((l) => l.times), 0) / 1000)),
      lines: stormChart
    },
    {
      title: `${outageMs / 1000} s outage (503), then recovery`,
      seconds: Math.ceil(outageMs / 1000) + 15,
      lines: contenders.map((c, i) => ({ name: c.name, times: outageResults[i]![0]!.times }))
    }
  ])
)
console.log(results)
