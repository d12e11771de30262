"""CallBucket ids, chosen so that the rows of one bucket start share index pages.

CallBucket's primary key is an INT64 id derived from the bucket's key, so a
write finds its rows without storing the key. LadybugDB keeps a hash index on
every primary key: the hash of an INT64 picks one of 256 sub-indexes by its top
8 bits and a slot by its low bits (LadybugDB 0.22,
`storage/index/hash_index_utils.h`). With ids that hash uniformly, a write's
lookups (a minute's 10,000 keys) land on random slots of the whole index, so
the index's pages stay in the buffer pool: about 36 bytes for every stored
row, 46 MB of the pool for 1.3 million rows, and growing with the retention.

LadybugDB hashes an INT64 with `murmurhash64`, which can be inverted. So an id
is made from the hash we want the index to see: its low CLASS_BITS are the
bucket's start in minutes, the rest come from the key's BLAKE2b digest. Every
row of one start then falls in the same slot class of each sub-index: a
minute's writes touch a few hundred index pages, whatever the table holds
(docs/storage.md, "Where the buffer pool's pages go"). If LadybugDB changed its
hash the ids would still be unique and found by key; only their placement
would be lost.

Two keys of the same start collide when 52 bits of their digests agree
(writes then refuse, `ladybug_buckets`); keys of starts 2^CLASS_BITS minutes
apart, or of different starts in the same minute, must agree in all 64.
"""

from __future__ import annotations

from collections.abc import Iterable
from hashlib import blake2b

CLASS_BITS = 12
CLASS_MASK = (1 << CLASS_BITS) - 1
CLASS_SECONDS = 60
_MULTIPLIER = 0xD6E8FEB86659FD93  # LadybugDB's murmurhash64
_INVERSE = pow(_MULTIPLIER, -1, 1 << 64)
_WORD = (1 << 64) - 1


def placed_hash(key: str, start: int) -> int:
    """The 64-bit hash LadybugDB should compute for this bucket's id."""
    digest = int.from_bytes(blake2b(key.encode(), digest_size=8).digest(), "big")
    return (digest & ~CLASS_MASK & _WORD) | (start // CLASS_SECONDS & CLASS_MASK)


def murmurhash64(value: int) -> int:
    """LadybugDB's hash of an INT64 (as an unsigned 64-bit word)."""
    x = value & _WORD
    x ^= x >> 32
    x = x * _MULTIPLIER & _WORD
    x ^= x >> 32
    x = x * _MULTIPLIER & _WORD
    return x ^ x >> 32


def unhash(hashed: int) -> int:
    """The INT64 whose murmurhash64 is `hashed` (x ^= x >> 32 is its own inverse)."""
    x = hashed ^ hashed >> 32
    x = x * _INVERSE & _WORD
    x ^= x >> 32
    x = x * _INVERSE & _WORD
    x ^= x >> 32
    return x - (1 << 64) if x >> 63 else x


def bucket_ids(keys: Iterable[str], starts: Iterable[int]) -> list[int]:
    """CallBucket ids of bucket keys (`CallBucket.key`) with their bucket starts:
    `unhash(placed_hash(key, start))`, inlined (a write computes thousands)."""
    ids = []
    keep, word, inverse, mask = _WORD & ~CLASS_MASK, _WORD, _INVERSE, CLASS_MASK
    from_bytes = int.from_bytes
    for key, start in zip(keys, starts, strict=True):
        x = (from_bytes(blake2b(key.encode(), digest_size=8).digest(), "big") & keep
             | start // CLASS_SECONDS & mask)
        x ^= x >> 32
        x = x * inverse & word
        x ^= x >> 32
        x = x * inverse & word
        x ^= x >> 32
        ids.append(x - (1 << 64) if x >> 63 else x)
    return ids
