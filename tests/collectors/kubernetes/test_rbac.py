"""The shipped RBAC manifest: read-only, and enough for every kind the watcher lists."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

from collectors.kubernetes.client import RESOURCES

READ_ONLY = {"get", "list", "watch"}


def _docs() -> list[dict[str, Any]]:
    text = resources.files("collectors.kubernetes").joinpath("rbac.yaml").read_text()
    return [d for d in yaml.safe_load_all(text) if d]


def test_cluster_role_is_read_only_without_wildcards() -> None:
    (role,) = [d for d in _docs() if d["kind"] == "ClusterRole"]
    for rule in role["rules"]:
        assert set(rule["verbs"]) == READ_ONLY, rule
        assert "*" not in rule["resources"] and "*" not in rule["apiGroups"], rule
        assert "secrets" not in rule["resources"], rule


def test_cluster_role_covers_every_watched_resource_and_is_bound() -> None:
    docs = _docs()
    (role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    granted = {(group, res) for rule in role["rules"]
               for group in rule["apiGroups"] for res in rule["resources"]}
    assert {(r.api_group, r.plural) for r in RESOURCES} == granted
    (account,) = [d for d in docs if d["kind"] == "ServiceAccount"]
    (binding,) = [d for d in docs if d["kind"] == "ClusterRoleBinding"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io",
                                  "kind": "ClusterRole", "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount",
                                    "name": account["metadata"]["name"],
                                    "namespace": account["metadata"]["namespace"]}]
