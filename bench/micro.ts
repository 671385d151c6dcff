// What the micro-benchmarks (a function called in a loop, ns per call) share:
// their flags, and the timing of one case.

/** `--iterations N --rounds N`, each with its default. */
export function parseArgs(argv: string[], defaults: { iterations: number; rounds: number }): { iterations: number; rounds: number } {
  const opts = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--iterations') opts.iterations = Number(argv[++i]);
    else if (argv[i] === '--rounds') opts.rounds = Number(argv[++i]);
    else throw new Error(`unknown flag ${argv[i]}`);
  }
  return opts;
}

/** ns per call over rounds, printed as the median and the best round (closest to an idle machine); returns the median. */
export function measure(name: string, iterations: number, rounds: number, fn: () => number): number {
  let sink = 0;
  for (let i = 0; i < iterations / 2; i++) sink += fn(); // warm up: let V8 optimize
  const samples: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) sink += fn();
    samples.push(Number(process.hrtime.bigint() - t0) / iterations);
  }
  samples.sort((a, b) => a - b);
  const median = samples[Math.floor(samples.length / 2)];
  if (sink === -1) console.log(''); // keeps the results alive
  console.log(`${name.padEnd(60)} median ${median.toFixed(0).padStart(5)} ns/op, best ${samples[0].toFixed(0).padStart(5)}`);
  return median;
}
