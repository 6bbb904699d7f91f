#!/usr/bin/env node
// Validates an OpenAPI 3.0 document (default: docs/openapi.json) with
// @apidevtools/swagger-parser: JSON syntax, the OpenAPI 3.0 JSON Schema, and
// that every $ref resolves. swagger-parser does no semantic checks for
// OpenAPI 3, so a few are added here: the version is 3.0.x, operationIds are
// unique, and every {param} of a path template is declared as a required path
// parameter (and no path parameter is declared that the template lacks).
//
// Usage: node tests/openapi/validate.js [FILE]
// Exit status 0 and "valid: N paths, M operations" on success; 1 and the
// validator's message on failure; 2 on a usage error.
"use strict";

const fs = require("fs");
const path = require("path");
const SwaggerParser = require("@apidevtools/swagger-parser");

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

function fail(msg) {
  process.stderr.write(`openapi: ${msg}\n`);
  process.exit(1);
}

function semanticChecks(api) {
  const problems = [];
  if (!/^3\.0\.\d+$/.test(String(api.openapi))) {
    problems.push(`"openapi" is ${JSON.stringify(api.openapi)}, expected 3.0.x`);
  }
  const seenIds = new Map();
  let operations = 0;
  for (const [tpl, item] of Object.entries(api.paths || {})) {
    const wanted = new Set([...tpl.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]));
    const shared = (item.parameters || []).filter((p) => p.in === "path");
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      operations++;
      const where = `${method.toUpperCase()} ${tpl}`;
      if (op.operationId) {
        if (seenIds.has(op.operationId)) {
          problems.push(`${where}: operationId ${op.operationId} also used by ${seenIds.get(op.operationId)}`);
        }
        seenIds.set(op.operationId, where);
      }
      // Operation-level parameters override path-level ones of the same name and location.
      const byName = new Map(shared.map((p) => [p.name, p]));
      for (const p of (op.parameters || []).filter((q) => q.in === "path")) byName.set(p.name, p);
      for (const name of wanted) {
        const p = byName.get(name);
        if (!p) problems.push(`${where}: path parameter {${name}} is not declared`);
        else if (p.required !== true) problems.push(`${where}: path parameter {${name}} must be required`);
      }
      for (const name of byName.keys()) {
        if (!wanted.has(name)) problems.push(`${where}: path parameter ${name} is not in the template`);
      }
    }
  }
  return { problems, operations };
}

async function main() {
  const args = process.argv.slice(2);
  if (args.length > 1 || args.includes("-h") || args.includes("--help")) {
    process.stderr.write("usage: node validate.js [OPENAPI_FILE]\n");
    process.exit(2);
  }
  const file = path.resolve(args[0] || path.join(__dirname, "..", "..", "docs", "openapi.json"));

  let text;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    fail(`${file}: ${err.message}`);
  }
  let doc;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    fail(`${file}: not valid JSON: ${err.message}`);
  }

  let api;
  try {
    // validate() dereferences in place: give it its own copy.
    api = await SwaggerParser.validate(JSON.parse(text));
  } catch (err) {
    fail(`${file}: ${err.message}`);
  }

  const { problems, operations } = semanticChecks(api);
  if (problems.length) fail(`${file}:\n  ${problems.join("\n  ")}`);

  const paths = Object.keys(doc.paths || {}).length;
  process.stdout.write(`${file}: valid OpenAPI ${doc.openapi}: ${paths} paths, ${operations} operations\n`);
}

main().catch((err) => fail(err && err.stack ? err.stack : String(err)));
