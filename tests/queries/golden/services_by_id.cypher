// neo4j
UNWIND $ids AS wanted MATCH (s:Service {id: wanted}) RETURN s.id AS id, s.name AS name, s.namespace AS namespace, s.cluster AS cluster, s.kind AS kind, s.labels AS labels
// ladybug
UNWIND $ids AS wanted MATCH (s:Service {id: wanted}) RETURN s.id AS id, s.name AS name, s.namespace AS namespace, s.cluster AS cluster, s.kind AS kind, s.labels AS labels
