#!/bin/sh
':' //; exec node --max-semi-space-size=64 "$0" "$@"
'use strict';
// Run as a program (`weft`, `npx weft`), the line above is sh: it starts node
// on this file with the flags a proxy wants (NODE_FLAGS in
// src/proxy/young-generation.ts, which a test keeps equal to it). To node it
// is a string and a comment. `node bin/weft.js` runs without them.
// The CLI is compiled by `npm install` (the `prepare` script) into dist/.
require('../dist/src/cli/main.js').main(process.argv).catch((err) => {
  process.stderr.write(`weft: ${err && err.message ? err.message : err}\n`);
  process.exit(1);
});
