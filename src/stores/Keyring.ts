/**
 * The OS keyring, through `@napi-rs/keyring` 1.2.0: the keyring-rs crate at
 * 3.6.3, the version the Codex CLI 0.169 is built with, so an item written
 * here is the item Codex writes (same label, same attributes) and each finds
 * the other's. On Linux it is the Secret Service on the session bus
 * (`DBUS_SESSION_BUS_ADDRESS`); there is no silent fallback to another store.
 *
 * The native binding is loaded on first use: a program that keeps its
 * credentials in a file never loads it. Every call is bounded in time and
 * interruptible (its promise is abandoned through an `AbortSignal`).
 */
import { keyringService } from "@effect-auth-manager/core/codex"
import { keyringProblem } from "@effect-auth-manager/core/fileRules"
import { Data, Duration, Effect, Option } from "effect"
import { createRequire } from "node:module"

/** The service name of every item Codex keeps its CLI credentials under. */
export const service = keyringService

/** Why the keyring could not be used: unreachable (no Secret Service), locked, ambiguous, too slow. */
export class KeyringError extends Data.TaggedError("KeyringError")<{
  readonly account: string
  readonly problem: string
}> {}

interface AsyncEntry {
  getPassword(signal?: AbortSignal | null): Promise<string | undefined | null>
  setPassword(password: string, signal?: AbortSignal | null): Promise<void>
  deleteCredential(signal?: AbortSignal | null): Promise<boolean>
}
interface Binding {
  readonly AsyncEntry: new(service: string, username: string) => AsyncEntry
  readonly findCredentialsAsync: (
    service: string,
    target?: string | null,
    signal?: AbortSignal | null
  ) => Promise<ReadonlyArray<unknown>>
}

let binding: Binding | undefined
// As for the flock binding: `require` in a CommonJS bundle, `createRequire` in an ES module.
const nativeRequire = (): NodeJS.Require => typeof require === "function" ? require : createRequire(import.meta.url)
const load = Effect.try({
  try: (): Binding => (binding ??= nativeRequire()("@napi-rs/keyring") as Binding),
  catch: (cause) =>
    new KeyringError({
      account: "",
      problem: `the keyring binding (@napi-rs/keyring) cannot be loaded on this platform: ${
        String((cause as Error).message ?? cause)
      }`
    })
})

/** The operations on items of `service`, by account (keyring-rs's username attribute). */
export interface Keyring {
  /**
   * The item's secret as UTF-8 text (keyring-rs refuses one that is not); none when there is no
   * item. Items Codex writes as bytes (`set_secret`, the v2 layout) hold UTF-8 text too.
   */
  readonly get: (account: string) => Effect.Effect<Option.Option<string>, KeyringError>
  /** Creates the item, or replaces its secret. */
  readonly set: (account: string, text: string) => Effect.Effect<void, KeyringError>
  /** Deletes the item; false when there was none. */
  readonly remove: (account: string) => Effect.Effect<boolean, KeyringError>
  /**
   * Succeeds when a keyring answers. A read cannot tell: with no Secret Service on the bus,
   * keyring-rs reads "no item" (Codex's reads too) and only a write fails. This searches for
   * items of a target nobody uses, so that no secret is read.
   */
  readonly probe: Effect.Effect<void, KeyringError>
}

// The library's messages say what the platform said ("no secret service provider or dbus session
// found", "Entry is matched by 2 credentials"); none carries a secret.
const describe = (cause: unknown) => {
  // The first line: some messages go on with a "Caused by" chain and a native stack trace.
  const message = (cause instanceof Error ? cause.message : String(cause)).trim().split("\n")[0]!.trim()
  return keyringProblem(message)
}

/** The keyring, every call bounded by `timeout`. */
export const make = (timeout: Duration.Duration): Keyring => {
  const call = <A>(account: string, run: (entry: AsyncEntry, signal: AbortSignal, native: Binding) => Promise<A>) =>
    Effect.flatMap(load, (native) =>
      Effect.tryPromise({
        try: (signal) => run(new native.AsyncEntry(service, account), signal, native),
        catch: (cause) => new KeyringError({ account, problem: describe(cause) })
      })).pipe(
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () =>
            new KeyringError({ account, problem: `the keyring did not answer within ${Duration.format(timeout)}` })
        })
      )
  return {
    get: (account) => Effect.map(call(account, (entry, signal) => entry.getPassword(signal)), Option.fromNullable),
    set: (account, text) => call(account, (entry, signal) => entry.setPassword(text, signal)),
    remove: (account) => call(account, (entry, signal) => entry.deleteCredential(signal)),
    probe: Effect.asVoid(
      call("", (_, signal, native) => native.findCredentialsAsync(service, "effect-auth-manager-probe", signal))
    )
  }
}
