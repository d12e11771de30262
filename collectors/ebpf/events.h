/* Event records shared by the BPF program (agent.c) and user space.
 *
 * User space builds its decoders from this file (collectors/ebpf/events.py
 * parses the structs below), so this is the one definition of the layouts.
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

/* Every record starts with its kind (u8): user space reads that byte first,
 * then the struct of that kind. Three layouts, each as small as its job:
 * a connection (addresses, process), a payload (the bytes follow the struct,
 * cap_len of them, so a record is only as long as what was captured), and
 * the end of a socket or a process (byte totals). */

/* EV_CONN */
struct conn_event {
    u8 kind;
    u8 role;
    u8 transport;
    u8 flags;
    u32 tgid;
    u32 pid;
    s32 fd;
    u64 ts_ns;
    u64 cgroup_id;
    u16 family;
    u16 lport;
    u16 rport;
    u16 pad;
    u8 laddr[16];
    u8 raddr[16];
    char comm[16];
};

/* EV_DATA, followed by cap_len bytes of payload (at most MAX_HEAD) */
struct data_event {
    u8 kind;
    u8 role;
    u8 direction;
    u8 transport;
    u32 tgid;
    s32 fd;
    u32 len;
    u64 ts_ns;
    u32 cap_len;
    u32 pad;
};

/* EV_CLOSE (a tracked socket closed) and EV_EXIT (a process owning some ended) */
struct end_event {
    u8 kind;
    u8 role;
    u8 transport;
    u8 pad;
    u32 tgid;
    s32 fd;
    u32 pad2;
    u64 ts_ns;
    u64 bytes_sent;
    u64 bytes_received;
};

#endif
