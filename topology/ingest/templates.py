"""Per-edge cap on path templates.

Folding catches ids that look like ids; the cap catches the rest. Each
(client, server) edge may hold at most `cap` distinct templates; a template
seen for the first time when the edge is full is replaced by
`{overflow}`. Templates already admitted stay admitted, so a redelivered
batch resolves exactly as it did the first time.

Two implementations share one interface: Redis (shared by every worker, the
admission is atomic in a Lua script) and in-memory (embedded mode, tests).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

from topology.ingest.paths import OVERFLOW_TEMPLATE

DEFAULT_CAP = 100
_PREFIX = "topology:paths:"

# KEYS = the edges' sets; ARGV = cap, ttl seconds, then for each edge in KEYS'
# order: how many templates, the templates. Returns the refused ones, flat:
# edge number (1-based), template, ... (usually nothing: a short reply). Many
# edges per call: a call per edge cost a round of packing and parsing each,
# which made admission the costliest step of a group's rows for new edges.
_ADMIT = """
local cap = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local refused = {}
local a = 3
for k = 1, #KEYS do
  local key = KEYS[k]
  local n = tonumber(ARGV[a])
  local size = redis.call('SCARD', key)
  for i = a + 1, a + n do
    local t = ARGV[i]
    if redis.call('SISMEMBER', key, t) == 0 then
      if size < cap then
        redis.call('SADD', key, t)
        size = size + 1
      else
        table.insert(refused, k)
        table.insert(refused, t)
      end
    end
  end
  a = a + n + 1
  redis.call('EXPIRE', key, ttl)
end
return refused
"""
# Edges per script call: bounds how long one call holds Redis.
_EDGES_PER_CALL = 500


class TemplateCap(ABC):
    """Decides which templates an edge may keep."""

    def __init__(self, cap: int = DEFAULT_CAP) -> None:
        if cap < 1:
            raise ValueError(f"template cap must be at least 1, got {cap}")
        self.cap = cap

    @abstractmethod
    def admit(self, wanted: Mapping[str, set[str]]) -> dict[str, set[str]]:
        """For each edge key, the subset of `wanted` templates it may keep."""

    def refuse(self, wanted: Mapping[str, set[str]]) -> dict[str, set[str]]:
        """The templates of `wanted` an edge may not keep (only edges with some):
        the rest of what `admit` decides, for callers that need only that."""
        admitted = self.admit(wanted)
        out = {}
        for edge, templates in wanted.items():
            left = templates - admitted.get(edge, set())
            if left:
                out[edge] = left
        return out

    @staticmethod
    def apply(template: str, admitted: set[str]) -> str:
        return template if template in admitted else OVERFLOW_TEMPLATE


class MemoryTemplateCap(TemplateCap):
    def __init__(self, cap: int = DEFAULT_CAP) -> None:
        super().__init__(cap)
        self._edges: dict[str, set[str]] = {}

    def admit(self, wanted: Mapping[str, set[str]]) -> dict[str, set[str]]:
        result: dict[str, set[str]] = {}
        for edge, templates in wanted.items():
            known = self._edges.setdefault(edge, set())
            accepted = set()
            for template in sorted(templates):
                if template in known:
                    accepted.add(template)
                elif len(known) < self.cap:
                    known.add(template)
                    accepted.add(template)
            result[edge] = accepted
        return result


class RedisTemplateCap(TemplateCap):
    """Admission sets in Redis, one per edge, forgotten `ttl` seconds after last use.

    Admission is final, so templates this process has seen admitted are
    remembered locally (bounded) and only new ones go to Redis: in steady state
    a batch costs no round trip at all.
    """

    _LOCAL_LIMIT = 200_000

    def __init__(self, redis: object, cap: int = DEFAULT_CAP, ttl: float = 30 * 86400) -> None:
        super().__init__(cap)
        self._redis = redis
        self._ttl = max(1, int(ttl))
        self._script = redis.register_script(_ADMIT)  # type: ignore[attr-defined]
        self._admitted: dict[str, set[str]] = {}  # edge -> templates seen admitted
        self._count = 0  # templates in `_admitted`

    def admit(self, wanted: Mapping[str, set[str]]) -> dict[str, set[str]]:
        known = self._admitted
        result: dict[str, set[str]] = {}
        ask: dict[str, list[str]] = {}
        for edge, templates in wanted.items():
            seen = known.get(edge)
            result[edge] = templates & seen if seen else set()
            if len(result[edge]) < len(templates):
                ask[edge] = sorted(templates - result[edge])
        if ask:
            for edge, admitted in self._ask(ask).items():
                result[edge] |= admitted
        return result

    def refuse(self, wanted: Mapping[str, set[str]]) -> dict[str, set[str]]:
        # In steady state every template is known here: one subset test per edge.
        known = self._admitted
        ask: dict[str, list[str]] = {}
        for edge, templates in wanted.items():
            seen = known.get(edge)
            if seen is None or not templates <= seen:
                ask[edge] = sorted(templates - seen if seen else templates)
        out: dict[str, set[str]] = {}
        if ask:
            for edge, admitted in self._ask(ask).items():
                left = set(ask[edge]) - admitted
                if left:
                    out[edge] = left
        return out

    def _ask(self, ask: dict[str, list[str]]) -> dict[str, set[str]]:
        """Redis's decision on templates not known here: the admitted ones per edge."""
        edges = list(ask)
        pipe = self._redis.pipeline(transaction=False)  # type: ignore[attr-defined]
        for start in range(0, len(edges), _EDGES_PER_CALL):
            chunk = edges[start:start + _EDGES_PER_CALL]
            args: list[object] = [self.cap, self._ttl]
            for edge in chunk:
                args.append(len(ask[edge]))
                args.extend(ask[edge])
            self._script(keys=[_PREFIX + edge for edge in chunk], args=args, client=pipe)
        refused: dict[str, set[str]] = {}
        for start, reply in zip(range(0, len(edges), _EDGES_PER_CALL), pipe.execute(),
                                strict=True):
            for i in range(0, len(reply), 2):
                raw = reply[i + 1]
                refused.setdefault(edges[start + int(reply[i]) - 1], set()).add(
                    raw.decode() if isinstance(raw, bytes) else raw)
        known = self._admitted
        if self._count > self._LOCAL_LIMIT:
            known.clear()
            self._count = 0
        out: dict[str, set[str]] = {}
        for edge, asked in ask.items():
            admitted = out[edge] = set(asked) - refused.get(edge, set())
            known.setdefault(edge, set()).update(admitted)
            self._count += len(admitted)
        return out
