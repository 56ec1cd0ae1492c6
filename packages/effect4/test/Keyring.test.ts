// The OS keyring binding (@napi-rs/keyring, keyring-rs 3.6.3 as in Codex 0.169), for real: a private D-Bus
// session with gnome-keyring unlocked on it, the item checked with secret-tool as another program sees it.
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Option } from "effect"
import * as Keyring from "../src/stores/Keyring.js"

// The repository's private Secret Service (test/support/keyringSession.ts, shared with the other
// edition's tests): loaded by URL, as it is outside this package's sources.
interface Session {
  readonly address: string
  readonly secretTool: (args: ReadonlyArray<string>, input?: string) => Promise<string>
  readonly stop: () => Promise<void>
}
interface Item {
  readonly label: string
  readonly secret: string
  readonly attributes: Readonly<Record<string, string>>
}
const KeyringSession =
  await (import(new URL("../../../test/support/keyringSession.ts", import.meta.url).href) as Promise<{
    readonly start: (options?: { readonly keyring?: boolean }) => Promise<Session>
    readonly parseItems: (output: string) => ReadonlyArray<Item>
  }>)

let session: Session
const previousBus = process.env.DBUS_SESSION_BUS_ADDRESS

// The binding reaches the Secret Service through the session bus in this process's environment.
beforeAll(async () => {
  session = await KeyringSession.start()
  process.env.DBUS_SESSION_BUS_ADDRESS = session.address
}, 30_000)
afterAll(async () => {
  if (previousBus === undefined) delete process.env.DBUS_SESSION_BUS_ADDRESS
  else process.env.DBUS_SESSION_BUS_ADDRESS = previousBus
  await session?.stop()
})

const account = "cli|0123456789abcdef"

describe("the keyring binding", () => {
  it.live("writes the item Codex writes (service, account, label of keyring-rs 3.6.3), reads it back, removes it", () =>
    Effect.gen(function*() {
      const keyring = Keyring.make(Duration.seconds(10))
      yield* keyring.probe
      expect(yield* keyring.get(account)).toEqual(Option.none())
      yield* keyring.set(account, "{\"OPENAI_API_KEY\":\"sk-test-SECRET\"}")
      const items = KeyringSession.parseItems(
        yield* Effect.promise(() =>
          session.secretTool(["search", "--all", "service", Keyring.service, "username", account])
        )
      )
      expect(items).toHaveLength(1)
      expect(items[0]!.label).toBe(`${account}@${Keyring.service}:default (keyring v3.6.3)`)
      expect(items[0]!.secret).toBe("{\"OPENAI_API_KEY\":\"sk-test-SECRET\"}")
      // Another program changes it in place: this read sees it.
      yield* Effect.promise(() =>
        session.secretTool(
          [
            "store",
            `--label=${items[0]!.label}`,
            ...Object.entries(items[0]!.attributes).flat()
          ],
          "{\"OPENAI_API_KEY\":\"sk-other\"}"
        )
      )
      expect(yield* keyring.get(account)).toEqual(Option.some("{\"OPENAI_API_KEY\":\"sk-other\"}"))
      expect(yield* keyring.remove(account)).toBe(true)
      expect(yield* keyring.remove(account)).toBe(false)
      expect(yield* keyring.get(account)).toEqual(Option.none())
    }))
})

describe("the keyring binding without a Secret Service", () => {
  it.live("the probe fails with what the platform said and what to do; nothing hangs", () =>
    Effect.gen(function*() {
      const bare = yield* Effect.acquireRelease(
        Effect.promise(() => KeyringSession.start({ keyring: false })),
        (bus) => Effect.promise(() => bus.stop())
      )
      const current = process.env.DBUS_SESSION_BUS_ADDRESS
      process.env.DBUS_SESSION_BUS_ADDRESS = bare.address
      const error = yield* Effect.flip(Keyring.make(Duration.seconds(10)).probe).pipe(
        Effect.ensuring(Effect.sync(() => (process.env.DBUS_SESSION_BUS_ADDRESS = current)))
      )
      expect(error._tag).toBe("KeyringError")
      expect(error.problem).toMatch(/secret service|dbus|freedesktop/i)
      expect(error.problem).toContain("cli_auth_credentials_store = \"file\"")
    }))
})
