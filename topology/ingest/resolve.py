"""Resolution: who called whom, for one call of a batch, and whether it counts.

Rules (issue 4), applied per call at the call's own timestamp:

* An end that carries `workload` is that workload. Otherwise its IP is looked up
  in the leases (the destination with its port: a port lease beats an IP lease).
* A destination no lease covers is external, named in order by the observer's
  `service` name (OpenTelemetry peers; provenance `trace`), the HTTP Host / SNI
  (`host`), a DNS answer for the IP (`dns`), else Unknown External Service
  (`unknown`). A Host that is an IP literal names nothing.
* A source no lease covers is outside the cluster, unless the observer named it
  (`service`: a queue between an OpenTelemetry producer and consumer), which
  makes it that named node.
* Counting, so one request is never counted twice: a client-side observation
  counts when the client is inside (resolved). A server-side observation counts
  when the caller is outside (the edge starts at External Clients) or when the
  caller's lease says `watched: false` (no agent can report its client side).
  A server-side observation of a watched caller is dropped: the caller's agent
  reports the same request from the client side. Agents run on every node, so
  leases are watched unless the watcher or agent says otherwise.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from topology.ingest import records
from topology.ingest.dns import DnsTable
from topology.ingest.identity import (
    external_clients,
    external_service,
    host_name,
    record_service_id,
    unknown_external,
    workload_service,
    workload_service_id,
)
from topology.ingest.leases import Lease, LeaseTable
from topology.ingest.records import Call, Workload
from topology.model import (
    EXTERNAL_CLIENTS_ID,
    NAMING_DNS,
    NAMING_HOST,
    NAMING_TRACE,
    NAMING_UNKNOWN,
    NAMING_WORKLOAD,
    UNKNOWN_EXTERNAL_ID,
    Service,
    external_id,
)

DROP_CLIENT_OUTSIDE = "client_side_unresolved_client"
DROP_SERVER_DUPLICATE = "server_side_watched_caller"


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class Resolver:
    """Resolves the calls of one batch against lease and DNS snapshots.

    Collects the services the counted calls mention (`services`) and counts
    dropped observations by reason (`dropped`).
    """

    def __init__(self, leases: LeaseTable, dns: DnsTable) -> None:
        self.leases = leases
        self.dns = dns
        self.services: dict[str, Service] = {}
        self.dropped: dict[str, int] = {DROP_CLIENT_OUTSIDE: 0, DROP_SERVER_DUPLICATE: 0}
        self._hosts: dict[str, str | None] = {}

    def resolve(self, call: Call) -> tuple[str, str, str] | None:
        """(client id, server id, naming) of a call that counts, else None."""
        ts = call.timestamp
        seen = int(ts)
        source = call.source
        client_id: str | None = None
        watched = True
        workload = source.workload
        if workload is not None:
            client_id = self._carried(workload, seen, source.ip, None, ts)
        else:
            ip = source.ip
            lease = self.leases.lookup(ip, None, ts) if ip else None
            if lease is not None:
                client_id = self._workload(lease.workload, seen, lease.service_id)
                watched = lease.watched
            elif source.service:
                client_id = self._external(source.service.lower(), seen)
                watched = False
        if call.side == "client":
            if client_id is None:
                self.dropped[DROP_CLIENT_OUTSIDE] += 1
                return None
        elif client_id is None:
            client_id = self._mention(EXTERNAL_CLIENTS_ID, seen) or self._add(
                external_clients(seen))
        elif watched:
            self.dropped[DROP_SERVER_DUPLICATE] += 1
            return None
        server_id, naming = self._server(call, ts, seen)
        return client_id, server_id, naming

    def _server(self, call: Call, ts: float, seen: int) -> tuple[str, str]:
        destination = call.destination
        workload = destination.workload
        ip = destination.ip
        if workload is not None:
            return (self._carried(workload, seen, ip, destination.port, ts),
                    NAMING_WORKLOAD)
        lease = self.leases.lookup(ip, destination.port, ts) if ip else None
        if lease is not None:
            return self._workload(lease.workload, seen, lease.service_id), NAMING_WORKLOAD
        named = destination.service
        if named:
            return self._external(named.lower(), seen), NAMING_TRACE
        host = call.host
        if host:
            name = self._host(host)
            if name:
                return self._external(name, seen), NAMING_HOST
        if ip:
            name = self.dns.lookup(ip, ts)
            if name:
                return self._external(name, seen), NAMING_DNS
        return (self._mention(UNKNOWN_EXTERNAL_ID, seen) or self._add(unknown_external(seen)),
                NAMING_UNKNOWN)

    def _host(self, host: str) -> str | None:
        if host not in self._hosts:
            name = host_name(host)
            self._hosts[host] = None if not name or _is_ip_literal(name) else name
        return self._hosts[host]

    def _carried(
        self, workload: Workload, seen: int, ip: str | None, port: int | None, ts: float,
    ) -> str:
        """An end whose observer named its workload; its lease is read once per batch."""
        sid = record_service_id(workload)
        service = self.services.get(sid)
        if service is None:
            lease = self.leases.lookup(ip, port, ts) if ip else None
            return self._workload(records.plain(workload), seen, sid, lease)
        if seen > service.seen:
            service.seen = seen
        labels = workload.labels
        if labels and labels != service.labels:
            service.labels = {**service.labels, **labels}
        return sid

    def _workload(
        self, workload: Mapping[str, Any], seen: int, sid: str = "", lease: Lease | None = None
    ) -> str:
        """The service of a workload; labels from the IP's lease complete an agent's.

        The store takes a service's labels from the latest batch that mentions it,
        so every mention carries the full set the watcher reported.
        """
        sid = sid or workload_service_id(workload)
        labels = workload.get("labels")
        if lease is not None and lease.service_id == sid:
            leased = lease.workload.get("labels")
            if leased:
                labels = {**leased, **labels} if labels else leased
        service = self.services.get(sid)
        if service is None:
            service = workload_service(workload, seen)
            if labels:
                service.labels = dict(labels)
            return self._add(service)
        if seen > service.seen:
            service.seen = seen
        if labels and labels != service.labels:
            service.labels = {**service.labels, **labels}
        return sid

    def _external(self, name: str, seen: int) -> str:
        return self._mention(external_id(name), seen) or self._add(external_service(name, seen))

    def _mention(self, sid: str, seen: int) -> str | None:
        service = self.services.get(sid)
        if service is None:
            return None
        if seen > service.seen:
            service.seen = seen
        return sid

    def _add(self, service: Service) -> str:
        self.services[service.id] = service
        return service.id
