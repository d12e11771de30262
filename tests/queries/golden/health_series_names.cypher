// neo4j
MATCH (k:CallBucket) WHERE k.bucket >= $since AND k.bucket < $until RETURN DISTINCT k.client AS client, k.server AS server, k.protocol AS protocol, k.path AS path
// ladybug
MATCH (k:CallBucket) WHERE k.bucket >= $since AND k.bucket < $until RETURN DISTINCT k.client AS client, k.server AS server, k.protocol AS protocol, k.path AS path
