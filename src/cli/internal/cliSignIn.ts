/**
 * `effect-auth login` in a browser or with a device code: the provider from
 * the flags (or `Config`), the link or code printed on standard error, the
 * browser opened when there is a desktop, a spinner while waiting when
 * standard error is a terminal, and Ctrl-C cancelling with nothing saved.
 */
import { Options } from "@effect/cli"
import * as Command from "@effect/platform/Command"
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as FileSystem from "@effect/platform/FileSystem"
import type * as HttpClient from "@effect/platform/HttpClient"
import { Config, Console, Data, Duration, Effect, Option, Redacted, Schedule } from "effect"
import { Configuration } from "../../config/Configuration.js"
import type { ClientAuth } from "../../config/Configuration.js"
import { SignInError } from "../../errors/Errors.js"
import type { AuthManager } from "../../manager/AuthManager.js"
import type { AuthState } from "../../manager/AuthState.js"
import * as OAuthProvider from "../../oauth/OAuthProvider.js"
import * as SignIn from "../../signin/SignIn.js"
import { readBoundedText } from "../../util/boundedRead.js"

export interface Flags {
  readonly device: boolean
  readonly noBrowser: boolean
  readonly issuer: Option.Option<string>
  readonly clientId: Option.Option<string>
  readonly clientSecretFile: Option.Option<string>
  readonly clientAuth: Option.Option<ClientAuth>
  readonly scopes: Option.Option<string>
  readonly port: Option.Option<number>
}

/** The options of `effect-auth login` for a browser or device sign-in. */
export const options = {
  device: Options.boolean("device").pipe(
    Options.withDescription("Sign in with a code entered on another device, instead of a browser on this one")
  ),
  noBrowser: Options.boolean("no-browser").pipe(Options.withDescription("Print the link only; do not open a browser")),
  issuer: Options.text("issuer").pipe(
    Options.withDescription("An OpenID Connect / OAuth 2 provider (its issuer URL) instead of ChatGPT"),
    Options.optional
  ),
  clientId: Options.text("client-id").pipe(
    Options.withDescription("The client id registered at --issuer"),
    Options.optional
  ),
  clientSecretFile: Options.file("client-secret-file", { exists: "yes" }).pipe(
    Options.withDescription("A file holding the client secret (or set EFFECT_AUTH_CLIENT_SECRET)"),
    Options.optional
  ),
  clientAuth: Options.choice("client-auth", ["none", "client_secret_post", "client_secret_basic"]).pipe(
    Options.withDescription("How the client authenticates at the token endpoint (default: basic with a secret)"),
    Options.optional
  ),
  scopes: Options.text("scopes").pipe(
    Options.withDescription("Scopes to ask for (default: openid profile email offline_access)"),
    Options.optional
  ),
  port: Options.integer("port").pipe(
    Options.withDescription(
      "The 127.0.0.1 port the browser comes back to (default: 1455 then 1457 for ChatGPT, any free port otherwise)"
    ),
    Options.optional
  )
}

/** A command line that cannot work, found before the sign-in starts: bad usage (exit code 2). */
export class UsageError extends Data.TaggedError("CliUsageError")<{ readonly message: string }> {}

export interface Terminal {
  readonly stderr: boolean
}

const providerOf = (flags: Flags) =>
  Effect.gen(function*() {
    const withPort = (provider: OAuthProvider.OAuthProvider) =>
      Option.match(flags.port, {
        onNone: () => provider,
        onSome: (port) => ({ ...provider, loopback: { ...provider.loopback, ports: [port] } })
      })
    const configuration = yield* Configuration
    if (Option.isNone(flags.issuer)) {
      const { provider } = OAuthProvider.fromConfiguration(configuration)
      return Effect.map(provider, withPort)
    }
    const clientId = Option.getOrUndefined(Option.orElse(flags.clientId, () => configuration.signIn.clientId))
    if (clientId === undefined) {
      return yield* new UsageError({
        message:
          "--issuer needs the id of the client registered there: give --client-id ID (or set EFFECT_AUTH_CLIENT_ID)."
      })
    }
    const fs = yield* FileSystem.FileSystem
    const secret = yield* Option.match(flags.clientSecretFile, {
      onNone: () => Effect.succeed(Option.getOrUndefined(configuration.signIn.clientSecret)),
      onSome: (file) =>
        Effect.map(
          readBoundedText(fs, file, 64 * 1024).pipe(
            Effect.mapError((error) => error._tag === "FileRefused" ? new Error(`${file}: ${error.problem}`) : error)
          ),
          (text) => Redacted.make(text.trim())
        )
    })
    return OAuthProvider.discover({
      issuer: flags.issuer.value,
      clientId,
      clientSecret: secret,
      clientAuth: Option.getOrUndefined(flags.clientAuth),
      scopes: Option.getOrUndefined(
        Option.map(flags.scopes, (scopes) => scopes.split(/[\s,]+/).filter((s) => s.length > 0))
      ),
      ports: Option.getOrUndefined(Option.map(flags.port, (port) => [port]))
    })
  })

/** Opens `url` in the desktop's browser, best effort: false when there is no desktop or no opener. */
const openInBrowser = (url: string) =>
  Effect.gen(function*() {
    // The desktop's own variables, not the library's settings (see Configuration).
    const display = yield* Config.option(Config.string("DISPLAY"))
    const wayland = yield* Config.option(Config.string("WAYLAND_DISPLAY"))
    const os = process.platform
    const opener = os === "darwin" ? ["open", url] : os === "win32" ?
      ["rundll32", "url.dll,FileProtocolHandler", url]
      : Option.isSome(display) || Option.isSome(wayland)
      ? ["xdg-open", url]
      : undefined
    if (opener === undefined) return false
    const [program, ...args] = opener as [string, ...Array<string>]
    const code = yield* Command.exitCode(
      Command.make(program, ...args).pipe(Command.stdout("inherit"), Command.stderr("inherit"))
    )
    return code === 0
  }).pipe(Effect.timeout(Duration.seconds(5)), Effect.orElseSucceed(() => false))

const frames = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"]

// One line redrawn in place (cursor up, clear line): the console writes whole lines.
const spinner = (label: string, terminal: Terminal) =>
  terminal.stderr
    ? Effect.gen(function*() {
      let frame = 0
      yield* Console.error(`${frames[0]} ${label}`)
      yield* Effect.repeat(
        Effect.suspend(() => Console.error(`\x1b[1A\x1b[2K${frames[++frame % frames.length]} ${label}`)),
        Schedule.spaced(Duration.millis(120))
      )
    })
    : Console.error(label)

/** What the person reads when a sign-in fails; for a refused client, where `effect-auth` takes it from. */
export const failureText = (error: { readonly message: string }): string =>
  error instanceof SignInError && error.reason === "client_refused"
    ? `${error.message}\neffect-auth takes the client from --client-id and --client-secret-file FILE ` +
      "(or EFFECT_AUTH_CLIENT_ID and EFFECT_AUTH_CLIENT_SECRET)."
    : error.message

/**
 * Runs a sign-in to the end: the new state, or the reason there is none.
 * Interrupting it (Ctrl-C) cancels the sign-in and closes its server.
 */
export const run = (flags: Flags, terminal: Terminal) =>
  Effect.gen(function*() {
    const provider = yield* providerOf(flags)
    const { originator, timeout } = (yield* Configuration).signIn
    const signIn = yield* SignIn.make(provider, { timeout, originator })
    const wait = (login: SignIn.Login, label: string) =>
      Effect.raceFirst(
        Effect.zipLeft(login.await, login.closed),
        Effect.zipRight(spinner(label, terminal), Effect.never)
      ).pipe(
        Effect.onInterrupt(() => Effect.zipRight(login.cancel, Console.error("Sign-in canceled; nothing was saved.")))
      )
    if (flags.device) {
      const login = yield* signIn.startDevice()
      // The code is a sign-in for this program: whoever enters it is who it signs in as. The danger is the
      // reverse flow too, someone sending you their code so that you sign their program in as you.
      yield* Console.error(
        `To sign in, open this page in a browser on any device:\n\n    ${login.verificationUrl}\n\n` +
          `and enter this code:\n\n    ${login.userCode}\n\n` +
          Option.match(login.verificationUrlComplete, { onNone: () => "", onSome: (url) => `(or open ${url})\n\n` }) +
          "Enter this code only yourself, and share it with no one: whoever enters it\n" +
          "signs this computer in with their account. Never enter a code that someone\n" +
          "else gave you: it would sign their program in as you."
      )
      return yield* wait(login, "Waiting for the code to be entered… (Ctrl-C to cancel)")
    }
    const login = yield* signIn.startBrowser()
    yield* Console.error(`To sign in, open this link in a browser on this computer:\n\n    ${login.authUrl}\n`)
    if (!flags.noBrowser && (yield* openInBrowser(login.authUrl))) yield* Console.error("(opened in your browser)")
    return yield* wait(login, "Waiting for the browser… (Ctrl-C to cancel)")
  }).pipe(Effect.scoped) satisfies Effect.Effect<
    AuthState,
    unknown,
    Configuration | AuthManager | HttpClient.HttpClient | FileSystem.FileSystem | CommandExecutor.CommandExecutor
  >
