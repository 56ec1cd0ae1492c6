/**
 * Two managers over one store, each with its own connection to it, act as one: two processes on one
 * machine (one CODEX_HOME), or two replicas of a server (one PostgreSQL database).
 */
import { type Cluster, startCluster } from "../support/postgres.js"
import type { Context } from "./context.js"
import type { World, WorldOptions } from "./edition.js"
import { chatgptAuth, secrets } from "./fixtures.js"
import * as Servers from "./servers.js"

export const sharing = ({ afterAll, edition, expect, group, withServer, withWorld }: Context): void => {
  // Two managers over one store, each with its own connection to it: two processes on one machine
  // (one CODEX_HOME), or two replicas of a server (one database).
  const sharing = (
    name: "one CODEX_HOME, two managers" | "one database, two replicas",
    shared: () => Promise<Pick<WorldOptions, "store" | "database">>
  ) =>
    group(name, (test) => {
      const pair = (
        first: Omit<WorldOptions, "store">,
        run: (first: World, second: () => Promise<World>) => Promise<void>
      ) =>
        shared().then((where) =>
          withWorld({ ...where, ...first }, async (world) => {
            const opened: Array<World> = []
            const second = async () => {
              const other = await edition.makeWorld({
                ...where,
                ...(where.store === "file" ? { codexHome: world.codexHome! } : {}),
                refresher: first.refresher
              })
              opened.push(other)
              return other
            }
            try {
              await run(world, second)
            } finally {
              await Promise.all(opened.map((other) => other.close()))
            }
          })
        )

      test("a dead refresh token found by one is known to the other from its start: no request of its own, the token withheld", () =>
        withServer(Servers.tokenEndpoint(() => Servers.reused), (endpoint) =>
          pair({ auth: chatgptAuth(), refresher: { _tag: "Http", tokenUrl: endpoint.url } }, async (first, second) => {
            await first.getAuthStatus({ refreshToken: true })
            expect(endpoint.received).toEqual([secrets.refresh])
            const other = await second()
            expect(await other.state()).toMatchObject({ status: "poisoned", reason: "reused" })
            expect(await other.getAuthStatus({ includeToken: true, refreshToken: true })).toMatchObject({
              authMethod: "chatgpt",
              authToken: null
            })
            expect(endpoint.received).toHaveLength(1)
          })))

      test("a refresh by one is adopted by the other, which finds the new tokens stored: one request in all", () =>
        withServer(Servers.tokenEndpoint(Servers.rotating(secrets.refresh)), (endpoint) =>
          pair(
            { auth: chatgptAuth({ expiresIn: -60_000 }), refresher: { _tag: "Http", tokenUrl: endpoint.url } },
            async (first, second) => {
              const other = await second()
              const refreshed = await first.getAuthStatus({ includeToken: true, refreshToken: true })
              const adopted = await other.getAuthStatus({ includeToken: true, refreshToken: true })
              expect(endpoint.received).toEqual([secrets.refresh])
              expect(adopted.authToken).toBe(refreshed.authToken)
              expect(adopted.authToken).not.toBe(secrets.access)
              expect((await other.stored())?.tokens.refresh_token).toBe("rt-1")
            }
          )))
    })

  sharing("one CODEX_HOME, two managers", async () => ({ store: "file" }))

  // One throwaway PostgreSQL cluster for the group, started as the scenarios are collected so that it
  // comes up while the groups before it run; each test its own tables (a prefix of its own).
  const cluster: Promise<Cluster> | undefined = edition.pending?.["one database, two replicas"] === undefined
    ? startCluster()
    : undefined
  // Its failure is the group's tests' to report, not an unhandled rejection before them.
  cluster?.catch(() => undefined)
  let tables = 0
  afterAll(async () => {
    await cluster?.then((started) => started.stop(), () => undefined)
  })
  sharing("one database, two replicas", async () => ({
    store: "postgres",
    database: { url: (await cluster!).url, prefix: `scenario_${++tables}` }
  }))
}
