// A LAN of network namespaces for tests: one namespace holding a bridge, one per host joined to
// it by a veth pair, 10.x addresses inside them only, and a 224.0.0.0/4 route in each so mDNS
// works. Everything is removed by destroy(), and on process exit if a test dies first.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'

export interface LanHost {
  name: string
  ns: string
  ip: string
}

export interface Lan {
  hosts: LanHost[]
  /** spawns `cmd args` inside a host's namespace */
  spawn: (host: LanHost, cmd: string, args: string[], env?: NodeJS.ProcessEnv) => ChildProcess
  destroy: () => void
}

function ip (...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] })
}

const live = new Set<() => void>()
process.once('exit', () => { for (const d of live) d() })

export function createLan (names: string[]): Lan {
  const tag = randomBytes(3).toString('hex')
  const subnet = `10.${100 + (parseInt(tag.slice(0, 2), 16) % 100)}.${parseInt(tag.slice(2, 4), 16)}`
  const bridgeNs = `csw${tag}br`
  const namespaces: string[] = []
  const children = new Set<ChildProcess>()
  const destroy = (): void => {
    for (const c of children) if (c.exitCode == null && c.signalCode == null) c.kill('SIGKILL')
    for (const ns of [...namespaces].reverse()) {
      try { execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split('\n').filter(Boolean).forEach(pid => { try { process.kill(Number(pid), 'SIGKILL') } catch {} }) } catch {}
      try { ip('netns', 'del', ns) } catch {}
    }
    namespaces.length = 0
    live.delete(destroy)
  }
  live.add(destroy)
  try {
    ip('netns', 'add', bridgeNs)
    namespaces.push(bridgeNs)
    ip('-n', bridgeNs, 'link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0')
    ip('-n', bridgeNs, 'link', 'set', 'br0', 'up')
    ip('-n', bridgeNs, 'link', 'set', 'lo', 'up')
    const hosts = names.map((name, i) => {
      const ns = `csw${tag}h${i}`
      ip('netns', 'add', ns)
      namespaces.push(ns)
      const a = `c${tag}${i}a`
      const b = `c${tag}${i}b`
      ip('link', 'add', a, 'netns', ns, 'type', 'veth', 'peer', 'name', b, 'netns', bridgeNs)
      ip('-n', bridgeNs, 'link', 'set', b, 'master', 'br0')
      ip('-n', bridgeNs, 'link', 'set', b, 'up')
      ip('-n', ns, 'link', 'set', 'lo', 'up')
      ip('-n', ns, 'link', 'set', a, 'name', 'eth0')
      const addr = `${subnet}.${i + 1}`
      ip('-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0')
      ip('-n', ns, 'link', 'set', 'eth0', 'up')
      ip('-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0')
      return { name, ns, ip: addr }
    })
    return {
      hosts,
      spawn: (host, cmd, args, env) => {
        const c = spawn('ip', ['netns', 'exec', host.ns, cmd, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
        children.add(c)
        c.once('exit', () => children.delete(c))
        return c
      },
      destroy
    }
  } catch (err) {
    destroy()
    throw err
  }
}

/** Resolves with a child's stdout once it exits 0; rejects with its stderr otherwise. */
export async function output (c: ChildProcess, what: string): Promise<string> {
  let out = ''
  let err = ''
  c.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  c.stderr?.on('data', (d: Buffer) => { err += d.toString() })
  const code = await new Promise<number | null>(resolve => c.once('exit', resolve))
  if (code !== 0) throw new Error(`${what} exited with ${code}: ${err.slice(-3000)}`)
  return out
}
