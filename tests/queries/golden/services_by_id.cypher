// neo4j
MATCH (s:Service) WHERE s.id IN $ids RETURN s.id AS id, s.name AS name, s.namespace AS namespace, s.cluster AS cluster, s.kind AS kind, s.labels AS labels
// ladybug
MATCH (s:Service) WHERE s.id IN $ids RETURN s.id AS id, s.name AS name, s.namespace AS namespace, s.cluster AS cluster, s.kind AS kind, s.labels AS labels
