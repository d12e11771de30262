// neo4j
MATCH (a:Service)-[r:CALLS]->(b:Service) RETURN a.id AS client, b.id AS server, r.first_seen AS first_seen, r.last_seen AS last_seen
// ladybug
MATCH (p:CallPair) RETURN p.client AS client, p.server AS server, p.first_seen AS first_seen, p.last_seen AS last_seen
