// The command registry: each entry adds one verb to the program.
import type { Command } from 'commander'
import type { CommandContext } from '../context.ts'
import { register as make } from './make.ts'
import { register as extract } from './extract.ts'
import { register as serve } from './serve.ts'
import { register as node } from './node.ts'
import { register as peers } from './peers.ts'
import { register as keygen } from './keygen.ts'
import { register as list } from './list.ts'
import { register as mtree } from './mtree.ts'
import { register as digest } from './digest.ts'
import { register as stat } from './stat.ts'
import { register as sim } from './sim.ts'

export type RegisterCommand = (program: Command, ctx: CommandContext) => void

export const commands: RegisterCommand[] = [
  make,
  extract,
  serve,
  node,
  peers,
  keygen,
  list,
  mtree,
  digest,
  stat,
  sim,
]
