// Verifying order-sync's webhook signature in Node.js.
//
//   node verify.js SECRET SIGNATURE_HEADER BODY_FILE [NOW]   # exit 0: genuine
'use strict';
const crypto = require('crypto');
const fs = require('fs');

// True when `header` (X-Order-Sync-Signature: t=<unix>,v1=<hex>) signs the raw
// `body` (a Buffer: read the request body unparsed) with `secret` and is at
// most `tolerance` seconds old.
function orderSyncSignatureIsValid(secret, header, body, now, tolerance = 300) {
  const parts = Object.fromEntries(header.split(',').map((item) => {
    const i = item.indexOf('=');
    return [item.slice(0, i), item.slice(i + 1)];
  }));
  if (!/^\d+$/.test(parts.t || '') || !parts.v1) return false;
  const timestamp = Number(parts.t);
  if (Math.abs(now - timestamp) > tolerance) return false;
  const expected = crypto.createHmac('sha256', secret)
    .update(Buffer.concat([Buffer.from(`${timestamp}.`), body])).digest('hex');
  const given = Buffer.from(parts.v1);
  return given.length === expected.length && crypto.timingSafeEqual(Buffer.from(expected), given);
}

module.exports = { orderSyncSignatureIsValid };

if (require.main === module) {
  const [secret, header, path, now] = process.argv.slice(2);
  const ok = orderSyncSignatureIsValid(secret, header, fs.readFileSync(path),
    now ? Number(now) : Math.floor(Date.now() / 1000));
  process.exit(ok ? 0 : 1);
}
