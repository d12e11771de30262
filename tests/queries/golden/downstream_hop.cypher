// neo4j
MATCH (a:Service)-[r:CALLS]->(b:Service) WHERE a.id IN $frontier AND r.first_seen < $until AND r.last_seen > $since RETURN a.id AS source, b.id AS target
// ladybug
MATCH (p:CallPair) WHERE p.client IN $frontier AND p.first_seen < $until AND p.last_seen > $since RETURN p.client AS source, p.server AS target
