#!/usr/bin/env node
'use strict';
// The CLI is compiled by `npm install` (the `prepare` script) into dist/.
require('../dist/src/cli/main.js').main(process.argv).catch((err) => {
  process.stderr.write(`weft: ${err && err.message ? err.message : err}\n`);
  process.exit(1);
});
