// A failover group, written `a|b` on the command line (desync's grammar): mirrors of one store.
// Requests go to the active member; only an error that is *not* "missing" (an outage, a timeout,
// a bad copy) moves on to the next member, which stays active from then on. A missing chunk is
// missing from the group: the mirrors hold the same chunks, so the next *source* is asked instead.
import type { ChunkId } from '../../protocol/chunk-id.ts'
import { AllSourcesFailedError, ChunkMissingError, InvalidArgumentError } from '../../protocol/errors.ts'
import { defaultLogger, type ComponentLogger, type Logger } from '../logger.ts'
import { isRawChunkSource, type AbortOptions, type ChunkStore, type GetOptions, type RawChunkSource } from './chunk-store.ts'

export interface FailoverGroupComponents { logger: ComponentLogger }

export class FailoverGroup implements ChunkStore, RawChunkSource {
  readonly members: ChunkStore[]
  private active = 0
  private readonly log: Logger

  constructor (members: ChunkStore[], components: FailoverGroupComponents = { logger: defaultLogger() }) {
    if (members.length === 0) throw new InvalidArgumentError('a failover group needs at least one store')
    this.members = members
    this.log = components.logger.forComponent('caswarm:store:failover')
  }

  toString (): string { return this.members.map(m => m.toString()).join('|') }

  /** The member requests go to now. */
  get current (): ChunkStore { return this.members[this.active]! }

  private async attempt<T> (what: string, signal: AbortSignal | undefined, fn: (store: ChunkStore) => Promise<T>): Promise<T> {
    const first = this.active
    const errors: unknown[] = []
    for (let i = 0; i < this.members.length; i++) {
      const index = (first + i) % this.members.length
      const store = this.members[index]!
      try {
        const result = await fn(store)
        if (index !== this.active) {
          this.log('failing over to %s', store.toString())
          this.active = index
        }
        return result
      } catch (err: any) {
        if (err?.code === ChunkMissingError.code) throw err
        if (signal?.aborted === true) throw signal.reason
        this.log.error('%s failed for %s, trying the next mirror - %s', store.toString(), what, err?.message ?? err)
        errors.push(err)
      }
    }
    if (errors.length === 1) throw errors[0]
    throw new AllSourcesFailedError(errors, `every mirror of ${this.toString()} failed for ${what}: ${errors.map((e: any) => e?.message ?? String(e)).join('; ')}`)
  }

  async get (id: ChunkId, options: GetOptions = {}): Promise<Uint8Array> {
    return await this.attempt(id.toString(), options.signal, async s => await s.get(id, options))
  }

  async getCompressed (id: ChunkId, options: GetOptions & { verify?: boolean } = {}): Promise<Uint8Array> {
    return await this.attempt(id.toString(), options.signal, async s => {
      if (!isRawChunkSource(s)) throw new InvalidArgumentError(`${s.toString()} cannot hand out compressed chunks`)
      return await s.getCompressed(id, options)
    })
  }

  async has (id: ChunkId, options: AbortOptions = {}): Promise<boolean> {
    return await this.attempt(id.toString(), options.signal, async s => await s.has(id, options))
  }

  async put (id: ChunkId, data: Uint8Array, options: AbortOptions = {}): Promise<void> {
    await this.attempt(id.toString(), options.signal, async s => { await s.put(id, data, options) })
  }

  async putCompressed (id: ChunkId, compressed: Uint8Array, options: AbortOptions = {}): Promise<void> {
    await this.attempt(id.toString(), options.signal, async s => {
      if (s.putCompressed != null) await s.putCompressed(id, compressed, options)
      else throw new InvalidArgumentError(`${s.toString()} cannot store compressed chunks`)
    })
  }

  async close (): Promise<void> {
    await Promise.all(this.members.map(async m => { await m.close() }))
  }
}
