// neo4j
MATCH (s:Service) RETURN s.id AS id, s.name AS name, s.namespace AS namespace, s.cluster AS cluster, s.kind AS kind, s.labels AS labels, s.first_seen AS first_seen, s.last_seen AS last_seen
// ladybug
MATCH (s:Service) RETURN s.id AS id, s.name AS name, s.namespace AS namespace, s.cluster AS cluster, s.kind AS kind, s.labels AS labels, s.first_seen AS first_seen, s.last_seen AS last_seen
