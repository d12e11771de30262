// neo4j
MATCH (s:Service) RETURN s.id AS id, s.name AS name, s.namespace AS namespace, s.cluster AS cluster, s.kind AS kind, s.labels AS labels
// ladybug
MATCH (s:Service) RETURN s.id AS id, s.name AS name, s.namespace AS namespace, s.cluster AS cluster, s.kind AS kind, s.labels AS labels
