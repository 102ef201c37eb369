import * as fs from 'node:fs/promises'

/** A block device's size in bytes, from sysfs (Node has no lseek or BLKGETSIZE64); 0 if unknown. */
export async function blockDeviceSize (file: string): Promise<number> {
  try {
    const real = await fs.realpath(file)
    const name = real.split('/').pop()!
    const sectors = await fs.readFile(`/sys/class/block/${name}/size`, 'utf8')
    return Number(sectors.trim()) * 512
  } catch {
    return 0
  }
}
