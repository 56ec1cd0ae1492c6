/**
 * An entry point whose optional peer dependencies are not installed fails
 * with a message that names them and says how to install them, instead of
 * Node's bare "Cannot find package" from deep inside the package.
 */

/** A peer: its package name and the range this package supports. */
export interface Peer {
  readonly name: string
  readonly range: string
}

/** The package a failed import could not find, from Node's ERR_MODULE_NOT_FOUND message. */
export const missingPackage = (error: unknown): string | undefined => {
  if ((error as NodeJS.ErrnoException | undefined)?.code !== "ERR_MODULE_NOT_FOUND") return undefined
  return /Cannot find package '([^']+)'/.exec(String((error as Error).message))?.[1]
}

export class MissingPeerError extends Error {
  constructor(readonly entry: string, readonly missing: string, readonly peers: ReadonlyArray<Peer>) {
    super(
      `${entry} needs the package ${missing}, which is not installed. Install its peers: npm install ${
        peers.map((peer) => `${peer.name}@${peer.range}`).map((spec) => `"${spec}"`).join(" ")
      }`
    )
    this.name = "MissingPeerError"
  }
}

/** Runs `load` (the entry's real module); when it fails for want of one of `peers`, fails with `MissingPeerError`. */
export const loadWithPeers = async <A>(
  entry: string,
  peers: ReadonlyArray<Peer>,
  load: () => Promise<A>
): Promise<A> => {
  try {
    return await load()
  } catch (error) {
    const missing = missingPackage(error)
    if (missing === undefined || !peers.some((peer) => peer.name === missing)) throw error
    throw new MissingPeerError(entry, missing, peers)
  }
}
