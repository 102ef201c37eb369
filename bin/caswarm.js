#!/usr/bin/env node
// Launcher: runs the TypeScript CLI through tsx so `npx caswarm` works straight after `npm install`.
import { register } from 'tsx/esm/api'
register()
await import('../cli/index.ts')
