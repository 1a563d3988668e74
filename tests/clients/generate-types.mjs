// Writes the TypeScript types of one OpenAPI document with openapi-typescript,
// through its Node API so as to apply the one transform its documentation
// gives for file uploads: a `format: binary` string is a Blob (the CLI types
// it `string`, which a multipart body cannot carry bytes in). Nothing else
// differs from the CLI. run.py copies this beside node_modules and runs it.
//
// Usage: node generate-types.mjs DOCUMENT.json OUTPUT.d.ts
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import openapiTS, { astToString } from "openapi-typescript";
import ts from "typescript";

const [input, output] = process.argv.slice(2);
const BLOB = ts.factory.createTypeReferenceNode(ts.factory.createIdentifier("Blob"));
const NULL = ts.factory.createLiteralTypeNode(ts.factory.createNull());

const ast = await openapiTS(pathToFileURL(path.resolve(input)), {
  transform(schemaObject) {
    if ("format" in schemaObject && schemaObject.format === "binary") {
      return schemaObject.nullable ? ts.factory.createUnionTypeNode([BLOB, NULL]) : BLOB;
    }
    return undefined;
  },
});
fs.writeFileSync(output, astToString(ast));
console.log(`wrote ${output} from ${input}`);
