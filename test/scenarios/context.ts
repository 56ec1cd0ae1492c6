/**
 * What every group of scenarios is written with: the edition under test, the runner's vitest, and the
 * helpers that open and always close worlds and servers.
 */
import type { Edition, Runner, World, WorldOptions } from "./edition.js"

/** The groups of scenarios, by the name an edition's `pending` uses. */
export const groups = [
  "refresh storm",
  "poison",
  "poison clearing",
  "transient backoff",
  "one CODEX_HOME, two managers",
  "one database, two replicas",
  "401 recovery",
  "browser sign-in",
  "secrets audit"
] as const
export type Group = (typeof groups)[number]

export const concurrentPolls = 200

export interface Context extends Pick<Runner, "afterAll" | "expect"> {
  readonly edition: Edition
  /** A describe block for `name`; its tests are todos with the reason while the edition has it pending. */
  readonly group: (name: Group, body: (test: (title: string, run: () => Promise<void>) => void) => void) => void
  readonly withWorld: (options: WorldOptions, run: (world: World) => Promise<void>) => Promise<void>
  readonly withServer: <S extends { close: () => Promise<void> }>(
    server: Promise<S>,
    run: (server: S) => Promise<void>
  ) => Promise<void>
  /** `concurrentPolls` polls at once, each asking for a refresh and the token. */
  readonly pollMany: (world: World) => Promise<ReadonlyArray<Awaited<ReturnType<World["getAuthStatus"]>>>>
}

export const makeContext = (edition: Edition, { afterAll, describe, expect, it }: Runner): Context => ({
  edition,
  afterAll,
  expect,
  group: (name, body) =>
    describe(`${name} (${edition.name})`, () => {
      const pending = edition.pending?.[name]
      body((title, run) => pending === undefined ? it(title, run) : it.todo(`${title}: ${pending}`))
    }),
  withWorld: async (options, run) => {
    const world = await edition.makeWorld(options)
    try {
      await run(world)
    } finally {
      await world.close()
    }
  },
  withServer: async (server, run) => {
    const started = await server
    try {
      await run(started)
    } finally {
      await started.close()
    }
  },
  pollMany: (world) =>
    Promise.all(
      Array.from({ length: concurrentPolls }, () => world.getAuthStatus({ includeToken: true, refreshToken: true }))
    )
})
