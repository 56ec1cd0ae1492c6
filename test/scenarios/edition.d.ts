/**
 * What a scenario needs of an edition of the library, with no Effect in it: a world (a manager over a
 * store and a refresher, on a test clock) driven through Promises. Each edition implements it with its
 * own public API (test/scenarios/effect3.ts, packages/effect4/test/edition.ts), so the scenarios
 * (scenarios.ts) are written once and run against both.
 *
 * Types only, so a declaration file: the Effect 4 package's compiler (its rootDir is packages/) reads
 * it from here, as it would not read a source file outside its root.
 */

/** How a scripted refresher answers one call. */
export type Step =
  | { readonly _tag: "Rotated"; readonly access: string; readonly refresh?: string }
  | { readonly _tag: "Dead"; readonly reason: "expired" | "reused" | "revoked" | "invalid_grant" }
  | { readonly _tag: "Down"; readonly retryAfterSeconds?: number }

export type Refresher =
  /** The edition's scripted refresher (`TokenRefresher.layerTest`); the last step repeats. */
  | { readonly _tag: "Scripted"; readonly steps: ReadonlyArray<Step> }
  /** The edition's HTTP refresher against a real token endpoint. */
  | { readonly _tag: "Http"; readonly tokenUrl: string }

export type StoreKind = "memory" | "file" | "postgres"

export interface WorldOptions {
  /** "file": auth.json in a fresh temporary CODEX_HOME, removed by `close`, unless `codexHome` names one. */
  readonly store: StoreKind
  /** With "file": an existing CODEX_HOME to share, as a second process on the same machine would (kept by `close`). */
  readonly codexHome?: string
  /**
   * With "postgres" (required): the database and the tables' prefix, the credential under the default key.
   * A second world on the same ones is a second replica. `auth` is saved there before the manager starts.
   */
  readonly database?: { readonly url: string; readonly prefix: string }
  /** The auth.json the store starts with; none for logged out (a shared `codexHome` keeps its own). */
  readonly auth?: Record<string, unknown>
  readonly refresher: Refresher
  /** A Codex issuer to sign in with in a browser (`signInWithBrowser`), its loopback on any free port. */
  readonly issuer?: string
}

/** The answer to getAuthStatus, its token read out (test data only). */
export interface Status {
  readonly authMethod: string | null
  readonly authToken: string | null
  readonly requiresOpenaiAuth: boolean
}

/** The manager's state, without secrets. */
export interface State {
  readonly method: string | null
  readonly status: "healthy" | "poisoned" | "cooling-down"
  readonly reason: string | null
  readonly retryAt: number | null
}

/** A typed failure as a user sees it: its tag and every way it prints. */
export interface Failure {
  readonly tag: string
  readonly message: string
  /** `String(error)` and `JSON.stringify(error)`: where a token must not appear either. */
  readonly printed: string
}

export interface World {
  /** The CODEX_HOME of a "file" world. */
  readonly codexHome: string | undefined
  readonly getAuthStatus: (params?: { includeToken?: boolean; refreshToken?: boolean }) => Promise<Status>
  readonly state: () => Promise<State>
  /** `refresh`: null when it succeeded, else its typed failure. */
  readonly refresh: () => Promise<Failure | null>
  readonly loginWithApiKey: (apiKey: string) => Promise<void>
  readonly loginWithTokens: (tokens: { idToken: string; access: string; refresh: string }) => Promise<void>
  readonly logout: () => Promise<void>
  /**
   * A browser sign-in through the edition's `SignIn` (needs `issuer`): starts it, hands its authorization
   * URL to `browser`, then waits for the outcome: the new state, or the typed failure.
   */
  readonly signInWithBrowser: (
    browser: (authUrl: string) => Promise<unknown>
  ) => Promise<{ readonly state: State } | { readonly failure: Failure }>
  readonly reload: () => Promise<Failure | null>
  /** Saves `auth` to the store behind the manager's back, as another process would. */
  readonly writeBehind: (auth: Record<string, unknown>) => Promise<void>
  /** The refresh tokens the scripted refresher was called with, in order. */
  readonly refreshCalls: () => Promise<ReadonlyArray<string>>
  /** The stored auth.json (file) or document (memory), as JSON; undefined when logged out. */
  readonly stored: () => Promise<Record<string, any> | undefined>
  /** A GET through the edition's AuthHttpClient (over its Node HTTP client): the status, or the typed failure. */
  readonly request: (url: string) => Promise<{ readonly status: number } | { readonly failure: Failure }>
  readonly clock: {
    readonly now: () => Promise<number>
    readonly adjust: (millis: number) => Promise<void>
    readonly setTime: (millis: number) => Promise<void>
  }
  /** Every log line and span the world's effects produced so far, as text. */
  readonly logs: () => Promise<string>
  /** Closes the manager (its scope) and removes what the world created. */
  readonly close: () => Promise<void>
}

export interface Edition {
  readonly name: string
  readonly makeWorld: (options: WorldOptions) => Promise<World>
  /** Scenarios this edition cannot run yet, by name, with the reason: reported as todo, never faked. */
  readonly pending?: Readonly<Record<string, string>>
}

/** The part of vitest the scenarios use, handed over by each edition's runner (each has its own vitest). */
export interface Runner {
  readonly describe: (name: string, body: () => void) => void
  readonly afterAll: (body: () => Promise<unknown>) => void
  readonly it: {
    (name: string, body: () => Promise<void>): void
    readonly todo: (name: string) => void
  }
  readonly expect: (actual: unknown, message?: string) => Assertion
}

export interface Assertion {
  readonly not: Assertion
  toBe(expected: unknown): void
  toEqual(expected: unknown): void
  toMatchObject(expected: object): void
  toBeNull(): void
  toHaveLength(expected: number): void
  toContain(expected: unknown): void
  toMatch(expected: RegExp): void
  toBeGreaterThan(expected: number): void
  toBeGreaterThanOrEqual(expected: number): void
  toBeLessThan(expected: number): void
  toBeLessThanOrEqual(expected: number): void
}

/** The scenarios, registered with the runner's vitest against one edition (scenarios.ts). */
export type Scenarios = (edition: Edition, runner: Runner) => void
