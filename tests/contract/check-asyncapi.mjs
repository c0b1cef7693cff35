// Parses an AsyncAPI document with the official parser; prints every
// diagnostic and exits 1 on errors (severity 0). Warnings and hints are printed only.
//   node tests/contract/check-asyncapi.mjs docs/asyncapi.yaml
import { Parser, fromFile } from '@asyncapi/parser';

const { document, diagnostics } = await fromFile(new Parser(), process.argv[2]).parse();
let errors = 0;
for (const d of diagnostics) {
  console.log(`${['error', 'warning', 'info', 'hint'][d.severity]} ${d.code}: ${d.message} at ${JSON.stringify(d.path)}`);
  if (d.severity === 0) errors += 1;
}
console.log(document && errors === 0 ? 'valid AsyncAPI document' : 'INVALID AsyncAPI document');
process.exit(document && errors === 0 ? 0 : 1);
