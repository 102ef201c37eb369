// Worker entry in plain JavaScript: registers the TypeScript loader (tsx) inside the worker,
// whatever started the main thread, then loads the real worker code (sim/thread.ts).
import { register } from 'tsx/esm/api'
register()
await import('./thread.ts')
