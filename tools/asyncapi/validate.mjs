// Validates AsyncAPI documents with the AsyncAPI project's own parser (@asyncapi/parser, pinned in package.json).
//
//   node tools/asyncapi/validate.mjs FILE [FILE...]
//
// Prints each diagnostic of severity error as "FILE: error: PATH: MESSAGE" on stderr and exits 1 when there is any
// (or a file cannot be read); warnings go to stderr with "warning:" and do not fail. Exits 0 when every document
// parses without an error, printing "FILE: valid AsyncAPI <version>" on stdout. Exit 2: usage.
import { Parser, fromFile, DiagnosticSeverity } from '@asyncapi/parser';

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: node tools/asyncapi/validate.mjs FILE [FILE...]');
  process.exit(2);
}

const parser = new Parser();
let failed = false;
for (const file of files) {
  let result;
  try {
    result = await fromFile(parser, file).parse();
  } catch (error) {
    console.error(`${file}: error: cannot read or parse: ${error.message}`);
    failed = true;
    continue;
  }
  const { document, diagnostics } = result;
  const where = (diagnostic) => (diagnostic.path.length ? diagnostic.path.join('.') : '(document)');
  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
  for (const diagnostic of errors) {
    console.error(`${file}: error: ${where(diagnostic)}: ${diagnostic.message} [${diagnostic.code}]`);
  }
  for (const diagnostic of diagnostics.filter((d) => d.severity === DiagnosticSeverity.Warning)) {
    console.error(`${file}: warning: ${where(diagnostic)}: ${diagnostic.message} [${diagnostic.code}]`);
  }
  if (errors.length > 0 || document === undefined) {
    if (errors.length === 0) console.error(`${file}: error: the parser returned no document`);
    failed = true;
  } else {
    console.log(`${file}: valid AsyncAPI ${document.version()}`);
  }
}
process.exit(failed ? 1 : 0);
