"""Graph stores: the embedded LadybugDB default and Neo4j, behind GraphStore."""

from __future__ import annotations

from typing import TYPE_CHECKING

from topology.settings import Settings

if TYPE_CHECKING:  # importing a store submodule must not load pyarrow (offload.py)
    from topology.store.base import GraphStore


def open_store(settings: Settings, *, track_changes: bool = True) -> GraphStore:
    """The store the settings name; Neo4j's module is imported only when asked for.
    `track_changes=False`: no reads in this process keep caches of the embedded store
    (its `changes` is then None)."""
    if settings.store == "neo4j":
        from topology.store.neo4j_store import Neo4jStore

        return Neo4jStore(settings)
    from topology.store.ladybug_store import LadybugStore

    return LadybugStore(settings, track_changes=track_changes)
