// bench/run-probe.sh's timing probes, run inside a RUN step: `node probe.js dns|https|files` prints one PROBE line.
// dns: 20 lookups of the registry; https: 10 fresh TLS requests with the CA secret; files: 20,000 2 kB files under /build/pf.
const dns = require('dns'), https = require('https'), fs = require('fs');
const what = process.argv[2];
const t0 = process.hrtime.bigint();
const ms = () => Number(process.hrtime.bigint() - t0) / 1e6;
if (what === 'dns') {
  let n = 0;
  (function f() { dns.lookup('registry.npmjs.org', { all: true }, (e, a) => { if (++n < 20) f(); else console.log('PROBE dns per lookup ms', (ms() / 20).toFixed(2), e ? e.code : JSON.stringify(a)); }); })();
} else if (what === 'https') {
  const ca = fs.readFileSync('/run/secrets/ca');
  let n = 0;
  (function f() {
    https.get({ host: 'registry.npmjs.org', path: '/left-pad', ca, agent: false }, r => { r.resume(); r.on('end', () => { if (++n < 10) f(); else console.log('PROBE https per request ms', (ms() / 10).toFixed(1), r.statusCode); }); }).on('error', e => console.log('PROBE https error', e.message));
  })();
} else if (what === 'files') {
  fs.mkdirSync('/tmp/pf', { recursive: true });
  const buf = Buffer.alloc(2000, 1);
  for (let i = 0; i < 20000; i++) { if (i % 100 === 0) fs.mkdirSync('/build/pf/d' + i, { recursive: true }); fs.writeFileSync('/build/pf/d' + (i - i % 100) + '/f' + i, buf); }
  console.log('PROBE 20000 files ms', ms().toFixed(0));
}
