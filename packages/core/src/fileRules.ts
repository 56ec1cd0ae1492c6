/**
 * The file store's rules, plain: the names of the files beside `auth.json`, the temporary-file
 * rule of an atomic write, which errno codes mean what, the owner file of the lock where no lock
 * primitive loads (its line and when it is stale), and the words of the store's warnings. Each
 * edition's file store does the I/O; what it decides by, it asks here.
 */
import { hostname } from "node:os"

/** Codex's credentials file. */
export const fileName = "auth.json"
/** The shared-health sidecar beside it. */
export const sidecarName = "auth-refresh-state.json"
/** The most of the sidecar that is read: it holds a hash and a few codes. */
export const maxSidecarBytes = 64 * 1024
/** Codex's lock: flock on it excludes the Codex CLI's writes of `auth.json` and ours. */
export const commitLockName = `${fileName}.lock`
/** Ours: one refresh at a time among the processes of this library. */
export const refreshLockName = `${fileName}.refresh.lock`

/** The temporary file of an atomic write of `destination` by process `pid`: `<destination>.<pid>.<n>.tmp`. */
export const temporaryName = (destination: string, pid: number, n: number): string => `${destination}.${pid}.${n}.tmp`

/** Whether `entry` (a name in the folder) is a temporary file of an atomic write of `name`. */
export const temporaryOf = (name: string) => (entry: string): boolean =>
  entry.startsWith(`${name}.`) && entry.endsWith(".tmp") && entry.length > name.length + 5

/** A temporary of the sidecar or of the pending refresh older than this is a killed writer's. */
export const killedWriterAfterMs = 60_000

/** Errors after which a file can still be rewritten in place, though not replaced. */
export const cannotReplace: ReadonlySet<string> = new Set(["EBUSY", "EPERM", "EXDEV", "EACCES"])

/** Errors opening the refresh lock that mean this process cannot write the folder, not that someone holds it. */
export const cannotOpenLock: ReadonlySet<string> = new Set(["EROFS", "EACCES", "EPERM"])

/** Errors of a non-blocking lock attempt that mean someone else holds it. */
export const lockBusy: ReadonlySet<string> = new Set(["EAGAIN", "EWOULDBLOCK"])

// The owner file, where no lock primitive loads: `<lock>.owner` holds "<pid> <host> <nonce>".

/** The owner file of the lock file `lockPath`. */
export const ownerName = (lockPath: string): string => `${lockPath}.owner`

/** The file that guards breaking the owner file `owner`. */
export const breakerName = (owner: string): string => `${owner}.break`

/**
 * A waiter's private file, linked to `owner` to take the lock: not "<name>.….tmp", since the file
 * store clears those of auth.json at start as a killed writer's.
 */
export const ownerTemporaryName = (owner: string, pid: number, nonce: string): string =>
  `${owner}.${pid}.${nonce}.pending`

/** A `.break` file older than this is a killed breaker's. */
export const breakerStaleMs = 5_000

/** A host name as the owner line holds it (no whitespace). */
export const hostId = (name: string): string => name.replace(/\s/g, "_")

/** This machine's host as the owner line holds it. */
export const thisHost = (): string => hostId(hostname())

/** The owner line of process `pid` on `host` (see `hostId`); `nonce` is hex. */
export const ownerLine = (pid: number, host: string, nonce: string): string => `${pid} ${hostId(host)} ${nonce}`

/** The process and host an owner line names; undefined when it is not an owner line. */
export const parseOwnerLine = (text: string): { readonly pid: number; readonly host: string } | undefined => {
  const match = /^(\d+) (\S+) ([0-9a-f]+)$/.exec(text.trim())
  return match === null ? undefined : { pid: Number(match[1]), host: match[2]! }
}

/** What tells whether an owner file is stale. */
export interface OwnerFile {
  /** Its text. */
  readonly text: string
  /** This host (`thisHost()`) and this process. */
  readonly here: string
  readonly pid: number
  /** When it was last modified (ms since the epoch); undefined when unknown. */
  readonly modifiedMs: number | undefined
  /** When this machine booted (ms since the epoch). */
  readonly bootMs: number
  /** Whether the process `pid` of this host no longer exists. */
  readonly gone: (pid: number) => boolean
}

/**
 * Whether the owner it names is provably gone: an unreadable line (the file is created whole, by
 * link(2), so it is not someone's half-written one); else same host, and the file predates the last
 * boot or its process no longer exists. Another host's owner is never stale here.
 */
export const ownerIsStale = ({ bootMs, gone, here, modifiedMs, pid, text }: OwnerFile): boolean => {
  const owner = parseOwnerLine(text)
  if (owner === undefined) return true
  if (owner.host !== here) return false
  if (modifiedMs !== undefined && modifiedMs < bootMs) return true
  return owner.pid !== pid && gone(owner.pid)
}

/** Whether process `pid` of this machine no longer exists (EPERM: it exists, under another user). */
export const processGone = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return false
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ESRCH"
  }
}

// The words of the store's warnings: what will go wrong, and what to do.

/** The warning said at start where the lock does not exclude the Codex CLI: what it means, what to do, and why. */
export const codexLockWarning = (reason: string): string =>
  "Codex's lock on auth.json cannot be taken here: do not run the Codex CLI on this CODEX_HOME at the same time. " +
  `Processes of effect-auth-manager still wait for each other (through auth.json.lock.owner files). Why: ${reason}`

/** Whether a folder of `mode` is writable by every user. */
export const writableByAll = (mode: number): boolean => (mode & 0o002) !== 0

/** Whether a file of `mode` is readable (or more) by other users. */
export const openToOthers = (mode: number): boolean => (mode & 0o077) !== 0

export const writableByAllWarning = (dir: string): string =>
  `${dir} is writable by every user: anyone could replace the credentials. Run: chmod 700 ${dir}`

export const notWritableWarning = (dir: string): string =>
  `${dir} is not writable by this user: refreshed tokens cannot be saved and sign-in will fail. ` +
  `Make it writable (chown it to this user, or chmod u+rwx ${dir}).`

/** `file` (whose link target, to chmod, is `target`) is open to others with `mode`. */
export const openToOthersWarning = (file: string, mode: number, target: string): string =>
  `${file} is readable by other users (mode ${(mode & 0o777).toString(8)}): it holds secrets. Run: chmod 600 ${target}`

export const lockFallbackWarning = (refreshLockPath: string, dir: string): string =>
  `Cannot open the refresh lock ${refreshLockPath}: refreshing without it, one at a time in this process only; ` +
  `refreshed tokens are served from memory until ${dir} can be written.`

export const inPlaceNote = "auth.json cannot be replaced atomically, so it is rewritten in place under the lock"
export const setAsideNote = "auth.json could not be read, so it was kept aside before writing"

/** Where an unreadable `file` is kept aside at `nowMs`. */
export const setAsideName = (file: string, nowMs: number): string => `${file}.unreadable-${nowMs}`

/** The problem of a key the file does not hold: it holds one credential, `credentialKey`. */
export const otherKeyProblem = (credentialKey: string, key: string): string =>
  `auth.json holds one credential ("${credentialKey}"), not "${key}"`

/** A keyring's `message`, with what to do when no Secret Service answers. */
export const keyringProblem = (message: string): string =>
  /no secret service provider|dbus session|org\.freedesktop\.secrets/i.test(message)
    ? `${message}. The keyring needs a Secret Service (gnome-keyring, KeePassXC…) on the D-Bus session bus; ` +
      `without one, keep the credentials in auth.json (cli_auth_credentials_store = "file")`
    : message
