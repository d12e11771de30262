"""Process identity from cgroups, and listening sockets from /proc/net/tcp."""

from __future__ import annotations

import pytest

from collectors.ebpf.identity import CgroupInfo, parse_cgroup, process_name
from collectors.ebpf.listeners import parse_proc_net_tcp

CID = "3f4e5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f"

CGROUPS = [
    ("root", "0::/\n", CgroupInfo()),
    ("systemd unit", "0::/system.slice/nginx.service\n", CgroupInfo(unit="nginx")),
    ("user session is not a unit", "0::/user.slice/user-0.slice/session-3.scope\n", CgroupInfo()),
    ("user manager is not a unit", "0::/user.slice/user-1000.slice/user@1000.service\n",
     CgroupInfo()),
    ("docker v2", f"0::/system.slice/docker-{CID}.scope\n", CgroupInfo(container_id=CID)),
    ("docker v1", f"12:memory:/docker/{CID}\n1:name=systemd:/docker/{CID}\n",
     CgroupInfo(container_id=CID)),
    ("kubernetes containerd",
     f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/"
     f"cri-containerd-{CID}.scope\n", CgroupInfo(container_id=CID, kubernetes=True)),
    ("kubernetes cgroupfs", f"0::/kubepods/burstable/pod1234/{CID}\n",
     CgroupInfo(container_id=CID, kubernetes=True)),
    ("kubernetes cgroup v1, hybrid", f"8:pids:/kubepods/burstable/pod1234/{CID}\n"
     "4:memory:/kubepods/burstable/pod1234\n0::/\n", CgroupInfo(container_id=CID, kubernetes=True)),
]


@pytest.mark.parametrize(("case", "text", "expected"), CGROUPS, ids=[c[0] for c in CGROUPS])
def test_parse_cgroup(case: str, text: str, expected: CgroupInfo) -> None:
    assert parse_cgroup(text) == expected


NAMES = [
    ("executable", CgroupInfo(), "/usr/sbin/nginx", "nginx", "nginx"),
    ("deleted executable", CgroupInfo(), "/opt/app (deleted)", "app", "app"),
    ("unit wins over executable", CgroupInfo(unit="api"), "/usr/bin/python3.11", "python3",
     "api"),
    ("container", CgroupInfo(container_id=CID), "/bin/sh", "sh", f"container-{CID[:12]}"),
    ("gone process falls back to comm", CgroupInfo(), None, "worker", "worker"),
]


@pytest.mark.parametrize(("case", "cgroup", "exe", "comm", "expected"), NAMES,
                         ids=[c[0] for c in NAMES])
def test_process_name(case: str, cgroup: CgroupInfo, exe: str | None, comm: str,
                      expected: str) -> None:
    assert process_name(cgroup, exe, comm) == expected


HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt  uid\n"
TAIL = " 00000000:00000000 00:00000000 00000000     0        0"
TCP4 = HEADER + "".join(f"   {n}: {local} {remote} {state}{TAIL} {inode} 1 0\n" for n, (
    local, remote, state, inode) in enumerate([
        ("0100007F:1F90", "00000000:0000", "0A", 1001),
        ("00000000:0050", "00000000:0000", "0A", 1002),
        ("0100007F:1F90", "0100007F:C350", "01", 1003),
    ]))
ANY6 = "00000000000000000000000000000000:0000"
TCP6 = HEADER + "".join(f"   {n}: {local} {ANY6} 0A{TAIL} {inode} 1 0\n" for n, (
    local, inode) in enumerate([
        ("00000000000000000000000001000000:0035", 2001),
        ("0000000000000000FFFF00000200000A:01BB", 2002),
    ]))


@pytest.mark.parametrize(("text", "expected"), [
    (TCP4, {1001: ("127.0.0.1", 8080), 1002: ("0.0.0.0", 80)}),
    (TCP6, {2001: ("::1", 53), 2002: ("10.0.0.2", 443)}),
])
def test_parse_proc_net_tcp_keeps_listeners(text: str,
                                            expected: dict[int, tuple[str, int]]) -> None:
    assert parse_proc_net_tcp(text) == expected
