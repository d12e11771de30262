/* Event records shared by the BPF program (agent.c) and user space.
 *
 * User space builds its ctypes decoder from this file (collectors/ebpf/events.py
 * parses the struct below), so this is the one definition of the layout.
 * Only fixed-width fields, one per line, natural alignment, no implicit padding.
 */
#ifndef TOPOLOGY_EVENTS_H
#define TOPOLOGY_EVENTS_H

#ifndef MAX_HEAD
#define MAX_HEAD 256
#endif

#define EV_CONN 1
#define EV_DATA 2
#define EV_CLOSE 3
#define EV_EXIT 4

#define ROLE_CLIENT 1
#define ROLE_SERVER 2
#define ROLE_DATAGRAM 3

#define DIR_EGRESS 1
#define DIR_INGRESS 2

#define TRANSPORT_TCP 1
#define TRANSPORT_UDP 2

/* event.flags of EV_CONN: the server side of a connection from this host's own
 * loopback; not tracked (the client side reports the calls), only announced so
 * user space learns who listens where. */
#define FLAG_LOOPBACK_PEER 1

/* Indexes of the loss counters (BPF array `lost`). */
#define LOST_CONN 0
#define LOST_DATA 1
#define LOST_CLOSE 2
#define LOST_EXIT 3
#define LOST_SLOTS 4

struct event {
    u64 ts_ns;
    u64 cgroup_id;
    u64 bytes_sent;
    u64 bytes_received;
    u32 tgid;
    u32 pid;
    s32 fd;
    u32 len;
    u32 cap_len;
    u16 family;
    u16 lport;
    u16 rport;
    u8 kind;
    u8 role;
    u8 direction;
    u8 transport;
    u8 flags;
    u8 pad[1];
    u8 laddr[16];
    u8 raddr[16];
    char comm[16];
    u8 buf[MAX_HEAD];
};

#endif
