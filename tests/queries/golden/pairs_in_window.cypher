// neo4j
MATCH (a:Service)-[r:CALLS]->(b:Service) WHERE r.first_seen < $until AND r.last_seen > $since RETURN a.id AS client, b.id AS server
// ladybug
MATCH (a:Service)-[r:CALLS]->(b:Service) WHERE r.first_seen < $until AND r.last_seen > $since RETURN a.id AS client, b.id AS server
