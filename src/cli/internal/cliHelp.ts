/**
 * The help pages of `effect-auth`, laid out for a terminal of 80 columns.
 *
 * `@effect/cli` prints each option's help as one line however long, lists the
 * commands in a table as wide as the longest usage (265–300 characters here),
 * and starts a command's usage without the program's name. Its help documents
 * are kept (descriptions, options, types); only the layout is ours: paragraphs
 * wrapped to the width, the commands listed by name, the usage named in full.
 */
import { CliConfig, Command, HelpDoc, Usage } from "@effect/cli"
import type { Span } from "@effect/cli/HelpDoc/Span"

/** No line of a help page is wider than this. */
export const width = 80

/** A command as the help pages show it: its name, what it does, and what `@effect/cli` documents of it. */
export interface Entry {
  readonly name: string
  readonly description: string
  readonly usage: () => Usage.Usage
  readonly help: (config: CliConfig.CliConfig) => HelpDoc.HelpDoc
}

/** `command` as the help pages show it (its documents are made only when a page is printed). */
export const entry = <Name extends string, R, E, A>(
  command: Command.Command<Name, R, E, A>,
  name: Name,
  description: string
): Entry => ({
  name,
  description,
  usage: () => Command.getUsage(command),
  help: (config) => Command.getHelp(command, config)
})

/** The program whose help is printed. */
export interface Program {
  readonly name: string
  readonly version: string
  readonly summary: string
  readonly description: string
  /** The program alone: its own options (the built-ins), as `@effect/cli` documents them. */
  readonly root: Entry
  readonly commands: ReadonlyArray<Entry>
}

const helpFlags = new Set(["--help", "-h"])

// The program's built-in option that does not replace the command: with it alone, there is no command.
const withoutLogLevel = (args: ReadonlyArray<string>) =>
  args.filter((arg, i) => !arg.startsWith("--log-level") && args[i - 1] !== "--log-level")

/**
 * Which help the arguments (after the program's name) ask for: none, the
 * program's (`undefined` command) or a command's. As `@effect/cli` decides:
 * a help flag anywhere asks for help, of the command it follows; no command
 * at all is a request for the program's help.
 */
export const helpRequest = (
  args: ReadonlyArray<string>,
  names: ReadonlyArray<string>
): { readonly command: string | undefined } | undefined => {
  if (withoutLogLevel(args).length === 0) return { command: undefined }
  const at = args.findIndex((arg) => names.includes(arg))
  if (at >= 0 && args.slice(at + 1).some((arg) => helpFlags.has(arg))) return { command: args[at] }
  return args.slice(0, at < 0 ? args.length : at).some((arg) => helpFlags.has(arg)) ? { command: undefined } : undefined
}

// ---------------------------------------------------------------------------
// Layout
// ---------------------------------------------------------------------------

const bold = (text: string) => `\u001b[1m${text}\u001b[0m`

const textOf = (span: Span): string => {
  switch (span._tag) {
    case "Text":
    case "URI":
      return span.value
    case "Sequence":
      return textOf(span.left) + textOf(span.right)
    default:
      return textOf(span.value)
  }
}

/**
 * `text` in lines of at most `room` characters, broken at spaces (for a
 * usage, only outside brackets: `[--flag value]` stays whole); a word longer
 * than the room has a line of its own. Continuation lines start with `hang`.
 */
export const wrap = (text: string, room: number, options: { readonly hang?: string; readonly usage?: boolean } = {}) =>
  text.split("\n").flatMap((paragraph) => {
    const hang = options.hang ?? ""
    const lines: Array<string> = []
    let line = ""
    for (const word of options.usage === true ? groups(paragraph) : paragraph.split(" ").filter((w) => w.length > 0)) {
      const candidate = line.length === 0 ? word : `${line} ${word}`
      if (candidate.length <= room || line.trim().length === 0) {
        line = candidate
      } else {
        lines.push(line)
        line = `${hang}${word}`
      }
    }
    lines.push(line)
    return lines
  })

// The words of a usage, each `[…]` group as one.
const groups = (text: string): Array<string> => {
  const found: Array<string> = []
  let depth = 0
  let word = ""
  for (const char of text) {
    if (char === " " && depth === 0) {
      if (word.length > 0) found.push(word)
      word = ""
      continue
    }
    if (char === "[") depth++
    if (char === "]" && depth > 0) depth--
    word += char
  }
  if (word.length > 0) found.push(word)
  return found
}

const indent = (blocks: Array<Array<string>>, by: string) => blocks.map((block) => block.map((line) => by + line))

/** A help document as blocks of lines (a blank line between blocks), within `room` columns. */
const blocksOf = (doc: HelpDoc.HelpDoc, room: number): Array<Array<string>> => {
  switch (doc._tag) {
    case "Empty":
      return []
    case "Header":
      return [[bold(textOf(doc.value))]]
    case "Paragraph":
      return [wrap(textOf(doc.value), room)]
    case "DescriptionList":
      return doc.definitions.flatMap((
        [term, body]
      ) => [[bold(textOf(term))], ...indent(blocksOf(body, room - 2), "  ")])
    case "Enumeration":
      return doc.elements.flatMap((element) =>
        blocksOf(element, room - 4).map((block) => block.map((line, i) => (i === 0 ? "  - " : "    ") + line))
      )
    case "Sequence":
      return [...blocksOf(doc.left, room), ...blocksOf(doc.right, room)]
  }
}

const render = (blocks: Array<Array<string>>) => blocks.map((block) => block.join("\n")).join("\n\n")

const usageOf = (program: Program, command: Entry | undefined) => {
  const usage = command === undefined
    ? `${program.name} COMMAND [OPTIONS]`
    : `${program.name} ${textOf(HelpDoc.getSpan(Usage.getHelp(command.usage())))}`
  return wrap(`$ ${usage}`, width, { hang: "    ", usage: true })
}

// The commands by name, each description wrapped beside it.
const commandList = (commands: ReadonlyArray<Entry>) => {
  const column = Math.max(...commands.map((entry) => entry.name.length)) + 4
  return commands.map((entry) =>
    wrap(entry.description, width - column).map((line, i) =>
      (i === 0 ? `  ${entry.name}`.padEnd(column) : " ".repeat(column)) + line
    ).join("\n")
  )
}

/**
 * The help page of the program (`command` undefined) or of one of its
 * commands, with ANSI bold on headers (the console strips it off a terminal).
 */
export const page = (program: Program, command: string | undefined, config = CliConfig.defaultConfig): string => {
  const entry = program.commands.find((candidate) => candidate.name === command)
  const header = [[bold(program.name)], wrap(`${program.name} ${program.version} -- ${program.summary}`, width)]
  const usage = [[bold("USAGE")], usageOf(program, entry)]
  if (entry !== undefined) {
    // DESCRIPTION and OPTIONS, as @effect/cli documents the command.
    return render([...header, ...usage, ...blocksOf(entry.help(config), width)]) + "\n"
  }
  const commands = [
    [bold("COMMANDS")],
    commandList(program.commands),
    wrap(`Run \`${program.name} COMMAND --help\` for the options of a command.`, width)
  ]
  return render([
    ...header,
    ...usage,
    [bold("DESCRIPTION")],
    wrap(program.description, width),
    ...commands,
    ...blocksOf(program.root.help(config), width)
  ]) + "\n"
}
