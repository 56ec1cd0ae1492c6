/**
 * Token endpoints that fail before any answer, on 127.0.0.1, for both editions' tests (plain
 * Node, no Effect): a server that resets every connection it accepts, and a port nothing listens
 * on. `urls` gives one of each, and `close` stops the resetting server.
 */
import * as Net from "node:net"

const listening = (server: Net.Server) =>
  new Promise<number>((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve((server.address() as Net.AddressInfo).port))
  )

export const brokenEndpoints = async () => {
  const resetting = Net.createServer((socket) => socket.resetAndDestroy())
  const resetPort = await listening(resetting)
  // A port nothing listens on: one a server had, closed again.
  const probe = Net.createServer()
  const freePort = await listening(probe)
  await new Promise<void>((resolve) => probe.close(() => resolve()))
  return {
    urls: [`http://127.0.0.1:${resetPort}/oauth/token`, `http://127.0.0.1:${freePort}/oauth/token`] as const,
    close: () => new Promise<void>((resolve) => resetting.close(() => resolve()))
  }
}
