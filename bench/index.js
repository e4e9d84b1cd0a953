#!/usr/bin/env node
// `node bench` from the repo root: runs the compiled bench (dist/bench/main.js).
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const main = path.join(__dirname, '..', 'dist', 'bench', 'main.js');
if (!fs.existsSync(main)) {
  process.stderr.write(`bench: ${path.relative(process.cwd(), main)} is missing: build first with \`npx tsc -p tsconfig.json\` (or \`npm run build\`)\n`);
  process.exit(2);
}
require(main);
