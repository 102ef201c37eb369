// The command registry: each verb's module is loaded only when that verb runs (or for the
// full --help), so `caswarm make` does not pay for loading libp2p or the simulator.
import type { Command } from 'commander'
import type { CommandContext } from '../context.ts'

export type RegisterCommand = (program: Command, ctx: CommandContext) => void

type Loader = () => Promise<{ register: RegisterCommand }>

export const commandModules: Record<string, Loader> = {
  make: async () => await import('./make.ts'),
  extract: async () => await import('./extract.ts'),
  list: async () => await import('./list.ts'),
  mtree: async () => await import('./mtree.ts'),
  digest: async () => await import('./digest.ts'),
  stat: async () => await import('./stat.ts'),
  serve: async () => await import('./serve.ts'),
  node: async () => await import('./node.ts'),
  peers: async () => await import('./peers.ts'),
  keygen: async () => await import('./keygen.ts'),
  sim: async () => await import('./sim.ts')
}

/** The commands to register for this argv: just the verb given, or all of them (help, typos). */
export async function loadCommands (argv: string[]): Promise<RegisterCommand[]> {
  const verb = argv.slice(2).find(a => !a.startsWith('-'))
  const names = verb != null && Object.hasOwn(commandModules, verb) ? [verb] : Object.keys(commandModules)
  return await Promise.all(names.map(async name => (await commandModules[name]!()).register))
}
