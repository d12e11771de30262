// Lint Cypher queries with Neo4j's own parser and semantic analysis.
//
// stdin:  {"labels": [...], "relationshipTypes": [...],
//          "queries": [{"name": str, "query": str, "parameters": {name: value}}]}
// stdout: [{"name": str, "diagnostics": [{"severity", "message", "line", "column"}]}]
//
// Functions and procedures are checked against the registry of a stock Neo4j 5
// that ships with the package (its test data, dumped from a real server), minus
// APOC: our deployment has no plugins, so an apoc.* call is a real problem.
'use strict';

const { lintCypherQuery, testData } = require('@neo4j-cypher/language-support');

const SEVERITY = { 1: 'error', 2: 'warning', 3: 'information', 4: 'hint' };

function withoutApoc(registry) {
  const result = {};
  for (const [version, entries] of Object.entries(registry)) {
    result[version] = Object.fromEntries(
      Object.entries(entries).filter(([name]) => !name.startsWith('apoc.')),
    );
  }
  return result;
}

function readStdin() {
  return require('fs').readFileSync(0, 'utf8');
}

function main() {
  const input = JSON.parse(readStdin());
  const functions = withoutApoc(testData.mockSchema.functions);
  const procedures = withoutApoc(testData.mockSchema.procedures);
  const results = input.queries.map((item) => {
    const schema = {
      labels: input.labels,
      relationshipTypes: input.relationshipTypes,
      functions,
      procedures,
      parameters: item.parameters || {},
      defaultLanguage: 'CYPHER 5',
    };
    const diagnostics = lintCypherQuery(item.query, schema).map((d) => ({
      severity: SEVERITY[d.severity] || String(d.severity),
      message: d.message,
      line: d.range.start.line + 1,
      column: d.range.start.character + 1,
    }));
    return { name: item.name, diagnostics };
  });
  process.stdout.write(JSON.stringify(results));
}

main();
