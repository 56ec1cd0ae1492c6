/**
 * The command line of a plain `effect-auth status`, read before anything is
 * loaded: the bin picks what to load from it, so that a plain `status` starts fast. No imports.
 */

export interface StatusOptions {
  readonly json: boolean
  readonly includeToken: boolean
  readonly refresh: boolean
}

const flags = { "--json": "json", "--include-token": "includeToken", "--refresh": "refresh" } as const

/**
 * The options of a plain `status` command line (the arguments after the
 * program), or `undefined` for anything else — help, other commands, unknown
 * or repeated flags — which the full parser answers.
 */
export const parseStatusArgs = (args: ReadonlyArray<string>): StatusOptions | undefined => {
  if (args[0] !== "status") return undefined
  const options = { json: false, includeToken: false, refresh: false }
  for (const arg of args.slice(1)) {
    const key = Object.hasOwn(flags, arg) ? flags[arg as keyof typeof flags] : undefined
    if (key === undefined || options[key]) return undefined
    options[key] = true
  }
  return options
}
