// neo4j
MATCH (b:Service)-[r:CALLS]->(a:Service) WHERE a.id IN $frontier AND r.first_seen < $until AND r.last_seen > $since RETURN a.id AS source, b.id AS target
// ladybug
MATCH (b:Service)-[r:CALLS]->(a:Service) WHERE a.id IN $frontier WITH a.id AS source, b.id AS target, r.pid AS pid MATCH (p:CallPair {id: pid}) WHERE p.first_seen < $until AND p.last_seen > $since RETURN source, target
