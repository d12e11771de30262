// neo4j
MATCH (a:Service)-[r:CALLS]->(b:Service) RETURN a.id AS client, b.id AS server, r.first_seen AS first_seen, r.last_seen AS last_seen
// ladybug
MATCH (a:Service)-[r:CALLS]->(b:Service) RETURN a.id AS client, b.id AS server, r.first_seen AS first_seen, r.last_seen AS last_seen
