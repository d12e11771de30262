// neo4j
MATCH (b:Service)-[r:CALLS]->(a:Service) WHERE a.id IN $frontier AND r.first_seen < $until AND r.last_seen > $since RETURN a.id AS source, b.id AS target
// ladybug
MATCH (p:CallPair) WHERE p.server IN $frontier AND p.first_seen < $until AND p.last_seen > $since RETURN p.server AS source, p.client AS target
