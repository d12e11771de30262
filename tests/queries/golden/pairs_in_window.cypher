// neo4j
MATCH (a:Service)-[r:CALLS]->(b:Service) WHERE r.first_seen < $until AND r.last_seen > $since RETURN a.id AS client, b.id AS server
// ladybug
MATCH (p:CallPair) WHERE p.first_seen < $until AND p.last_seen > $since RETURN p.client AS client, p.server AS server
