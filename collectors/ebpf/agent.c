/* Socket tracing on syscall tracepoints (no kprobes: CONFIG_KPROBES is off).
 *
 * Compiled by BCC with these #defines set by collectors/ebpf/program.py:
 *   AGENT_TGID     the agent's own process, never traced (no feedback loop)
 *   MAX_HEAD       bytes of payload captured per read/write (events.h)
 *   MAX_CONNS      entries of the tracked-socket table (LRU)
 *   RINGBUF_PAGES  size of the event ring buffer, in pages (a power of two)
 *   DNS_PORT       UDP peer port whose datagrams are captured without connect()
 *   SKIP_LOOPBACK_SERVER  1: do not trace the server side of loopback connections
 *                  (the client is on this host and reports the same calls)
 *
 * Connections: connect() (client) and accept()/accept4() (server) on TCP sockets.
 * The 4-tuple comes from sock:inet_sock_set_state, which the kernel fires in
 * the connecting task for SYN_SENT and in softirq for SYN_RECV -> ESTABLISHED
 * (matched to accept by the peer address). Tracked sockets get their payload
 * heads captured and their bytes counted; close() and process exit end them.
 * Payload records carry only the bytes captured (ringbuf_output from a per-CPU
 * scratch record), and only heads: see io_exit for what counts as one.
 */
#include <uapi/linux/ptrace.h>
#include <linux/socket.h>
#include <linux/in.h>
#include <linux/in6.h>
#include "events.h"

#define EINPROGRESS_ 115
#define TCP_ESTABLISHED_ 1
#define TCP_SYN_SENT_ 2
#define TCP_SYN_RECV_ 3

#define IO_PLAIN 0
#define IO_IOV 1
#define IO_MSG 2

struct conn_key { u32 tgid; s32 fd; };
struct conn_val {
    u64 bytes_sent;
    u64 bytes_received;
    u8 role;
    u8 transport;
    u8 capture;
    u8 last_dir;   /* direction of the last read/write seen */
    u8 last_long;  /* it moved MAX_HEAD bytes or more: later ones that way carry no head */
    u8 pad[3];
};
/* A payload record is built here (per CPU: tracepoint programs do not nest on
 * a CPU) and copied into the ring buffer at its captured length only. */
struct data_record {
    struct data_event head;
    u8 buf[MAX_HEAD];
};
struct call_args { s32 fd; u32 pad; u64 addr; };
struct tuple {
    u16 family;
    u16 lport;
    u16 rport;
    u16 pad;
    u8 laddr[16];
    u8 raddr[16];
};
struct peer_key { u16 family; u16 rport; u32 pad; u8 raddr[16]; };
struct io_args { s32 fd; u8 kind; u8 direction; u8 pad[2]; u64 buf; u64 addr; };
struct iovec_ { u64 base; u64 len; };
struct msghdr_ {
    u64 name;
    s32 namelen;
    u32 pad;
    u64 iov;
    u64 iovlen;
};
struct sockaddr_in_ { u16 family; u16 port; u8 addr[4]; };
struct sockaddr_in6_ { u16 family; u16 port; u32 flowinfo; u8 addr[16]; };

BPF_RINGBUF_OUTPUT(events, RINGBUF_PAGES);
BPF_TABLE("lru_hash", struct conn_key, struct conn_val, tracked, MAX_CONNS);
BPF_HASH(connect_args, u64, struct call_args, 10240);
BPF_HASH(accept_args, u64, struct call_args, 10240);
BPF_HASH(syn_tuple, u64, struct tuple, 10240);
BPF_TABLE("lru_hash", struct peer_key, struct tuple, established, MAX_CONNS);
BPF_HASH(io, u64, struct io_args, 10240);
BPF_PERCPU_ARRAY(lost, u64, LOST_SLOTS);
BPF_PERCPU_ARRAY(scratch, struct data_record, 1);
/* Processes that own tracked sockets: only their exits are reported. */
BPF_TABLE("lru_hash", u32, u8, owners, MAX_CONNS);

static __always_inline int skip(u64 id) {
    return (id >> 32) == AGENT_TGID;
}

static __always_inline void count_lost(int slot) {
    u64 *value = lost.lookup(&slot);
    if (value)
        (*value)++;
}

static __always_inline void track(struct conn_key *key, struct conn_val *val) {
    u8 one = 1;
    tracked.update(key, val);
    owners.update(&key->tgid, &one);
}

static __always_inline struct conn_event *reserve_conn(u8 role, u8 transport, s32 fd) {
    struct conn_event *ev = events.ringbuf_reserve(sizeof(struct conn_event));
    if (!ev) {
        count_lost(LOST_CONN);
        return 0;
    }
    u64 id = bpf_get_current_pid_tgid();
    __builtin_memset(ev, 0, sizeof(*ev));
    ev->kind = EV_CONN;
    ev->role = role;
    ev->transport = transport;
    ev->tgid = id >> 32;
    ev->pid = (u32)id;
    ev->fd = fd;
    ev->ts_ns = bpf_ktime_get_ns();
    ev->cgroup_id = bpf_get_current_cgroup_id();
    bpf_get_current_comm(&ev->comm, sizeof(ev->comm));
    return ev;
}

/* EV_CLOSE or EV_EXIT, submitted at once. */
static __always_inline void send_end(u8 kind, int slot, s32 fd, u8 role, u8 transport,
                                     u64 sent, u64 received) {
    struct end_event *ev = events.ringbuf_reserve(sizeof(struct end_event));
    if (!ev) {
        count_lost(slot);
        return;
    }
    __builtin_memset(ev, 0, sizeof(*ev));
    ev->kind = kind;
    ev->role = role;
    ev->transport = transport;
    ev->tgid = bpf_get_current_pid_tgid() >> 32;
    ev->fd = fd;
    ev->ts_ns = bpf_ktime_get_ns();
    ev->bytes_sent = sent;
    ev->bytes_received = received;
    events.ringbuf_submit(ev, BPF_RB_NO_WAKEUP);
}

static __always_inline int is_loopback6(u8 *a) {
    u64 high = 0, low = 0;
    __builtin_memcpy(&high, a, 8);
    __builtin_memcpy(&low, a + 8, 8);
    return high == 0 && low == ((u64)1 << 56);  /* ::1, big-endian in memory */
}

static __always_inline int is_v4mapped(u8 *a) {
    u64 high = 0;
    __builtin_memcpy(&high, a, 8);
    return high == 0 && a[8] == 0 && a[9] == 0 && a[10] == 0xff && a[11] == 0xff;
}

/* Reads a user sockaddr into family/port/address; returns 0 unless AF_INET(6). */
static __always_inline int read_sockaddr(u64 uaddr, u16 *family, u16 *port, u8 *addr) {
    struct sockaddr_in6_ sa = {};
    if (!uaddr || bpf_probe_read_user(&sa, sizeof(sa), (void *)uaddr))
        return 0;
    if (sa.family == AF_INET) {
        struct sockaddr_in_ *in4 = (struct sockaddr_in_ *)&sa;
        __builtin_memset(addr, 0, 16);
        __builtin_memcpy(addr, in4->addr, 4);
    } else if (sa.family == AF_INET6) {
        __builtin_memcpy(addr, sa.addr, 16);
    } else {
        return 0;
    }
    *family = sa.family;
    *port = ntohs(sa.port);
    return 1;
}

TRACEPOINT_PROBE(sock, inet_sock_set_state) {
    if (args->protocol != IPPROTO_TCP)
        return 0;
    struct tuple t = {};
    t.family = args->family;
    t.lport = args->sport;
    t.rport = args->dport;
    if (args->family == AF_INET) {
        __builtin_memcpy(t.laddr, args->saddr, 4);
        __builtin_memcpy(t.raddr, args->daddr, 4);
    } else {
        __builtin_memcpy(t.laddr, args->saddr_v6, 16);
        __builtin_memcpy(t.raddr, args->daddr_v6, 16);
    }
    if (args->newstate == TCP_SYN_SENT_) {
        u64 id = bpf_get_current_pid_tgid();
        if (!skip(id))
            syn_tuple.update(&id, &t);
    } else if (args->newstate == TCP_ESTABLISHED_ && args->oldstate == TCP_SYN_RECV_) {
        struct peer_key key = {.family = t.family, .rport = t.rport};
        __builtin_memcpy(key.raddr, t.raddr, 16);
        established.update(&key, &t);
    }
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_connect) {
    u64 id = bpf_get_current_pid_tgid();
    if (skip(id))
        return 0;
    struct call_args a = {.fd = args->fd, .addr = (u64)args->uservaddr};
    connect_args.update(&id, &a);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_connect) {
    u64 id = bpf_get_current_pid_tgid();
    struct call_args *a = connect_args.lookup(&id);
    if (!a)
        return 0;
    struct call_args saved = *a;
    connect_args.delete(&id);
    struct tuple *t = syn_tuple.lookup(&id);
    struct tuple tcp = {};
    int is_tcp = 0;
    if (t) {
        tcp = *t;
        is_tcp = 1;
        syn_tuple.delete(&id);
    }
    if (args->ret != 0 && args->ret != -EINPROGRESS_)
        return 0;
    u16 family = 0, port = 0;
    u8 addr[16] = {};
    if (!read_sockaddr(saved.addr, &family, &port, addr))
        return 0;
    if (!is_tcp && port != DNS_PORT)
        return 0;
    struct conn_key key = {.tgid = id >> 32, .fd = saved.fd};
    struct conn_val val = {.role = ROLE_CLIENT, .capture = 1};
    val.transport = is_tcp ? TRANSPORT_TCP : TRANSPORT_UDP;
    track(&key, &val);
    struct conn_event *ev = reserve_conn(ROLE_CLIENT, val.transport, saved.fd);
    if (!ev)
        return 0;
    ev->family = family;
    ev->rport = port;
    __builtin_memcpy(ev->raddr, addr, 16);
    if (is_tcp) {
        ev->lport = tcp.lport;
        __builtin_memcpy(ev->laddr, tcp.laddr, 16);
    }
    events.ringbuf_submit(ev, BPF_RB_NO_WAKEUP);
    return 0;
}

static __always_inline int accept_enter(int fd, u64 addr) {
    u64 id = bpf_get_current_pid_tgid();
    if (skip(id))
        return 0;
    struct call_args a = {.fd = fd, .addr = addr};
    accept_args.update(&id, &a);
    return 0;
}

static __always_inline int accept_exit(long ret) {
    u64 id = bpf_get_current_pid_tgid();
    struct call_args *a = accept_args.lookup(&id);
    if (!a)
        return 0;
    struct call_args saved = *a;
    accept_args.delete(&id);
    if (ret < 0)
        return 0;
    u16 family = 0, port = 0;
    u8 addr[16] = {};
    if (!read_sockaddr(saved.addr, &family, &port, addr))
        return 0;
    int loopback = family == AF_INET ? addr[0] == 127
        : (is_loopback6(addr) || (is_v4mapped(addr) && addr[12] == 127));
    if (!(SKIP_LOOPBACK_SERVER && loopback)) {
        struct conn_key key = {.tgid = id >> 32, .fd = ret};
        struct conn_val val = {.role = ROLE_SERVER, .transport = TRANSPORT_TCP, .capture = 1};
        track(&key, &val);
    }
    struct conn_event *ev = reserve_conn(ROLE_SERVER, TRANSPORT_TCP, ret);
    if (!ev)
        return 0;
    ev->flags = (SKIP_LOOPBACK_SERVER && loopback) ? FLAG_LOOPBACK_PEER : 0;
    ev->family = family;
    ev->rport = port;
    __builtin_memcpy(ev->raddr, addr, 16);
    struct peer_key pk = {.family = family, .rport = port};
    __builtin_memcpy(pk.raddr, addr, 16);
    struct tuple *t = established.lookup(&pk);
    if (t) {
        ev->lport = t->lport;
        __builtin_memcpy(ev->laddr, t->laddr, 16);
        established.delete(&pk);
    }
    events.ringbuf_submit(ev, BPF_RB_NO_WAKEUP);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_accept) {
    return accept_enter(args->fd, (u64)args->upeer_sockaddr);
}
TRACEPOINT_PROBE(syscalls, sys_exit_accept) { return accept_exit(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_accept4) {
    return accept_enter(args->fd, (u64)args->upeer_sockaddr);
}
TRACEPOINT_PROBE(syscalls, sys_exit_accept4) { return accept_exit(args->ret); }

/* Remembers the buffer of an I/O syscall on a tracked socket (or, for
 * recvfrom/recvmsg, on any socket: its source address may be DNS_PORT). */
static __always_inline int io_enter(int fd, u64 buf, u64 addr, u8 kind, u8 direction, int any) {
    u64 id = bpf_get_current_pid_tgid();
    if (skip(id))
        return 0;
    struct conn_key key = {.tgid = id >> 32, .fd = fd};
    if (!any && !tracked.lookup(&key))
        return 0;
    struct io_args a = {.fd = fd, .kind = kind, .direction = direction, .buf = buf, .addr = addr};
    io.update(&id, &a);
    return 0;
}

static __always_inline int io_exit(long ret) {
    u64 id = bpf_get_current_pid_tgid();
    struct io_args *p = io.lookup(&id);
    if (!p)
        return 0;
    struct io_args a = *p;
    io.delete(&id);
    if (ret <= 0)
        return 0;
    u64 buf = a.buf;
    u64 peer = a.addr;
    if (a.kind == IO_MSG) {
        struct msghdr_ msg = {};
        if (bpf_probe_read_user(&msg, sizeof(msg), (void *)buf))
            return 0;
        peer = msg.name;
        buf = msg.iov;
        a.kind = IO_IOV;
    }
    u64 avail = ret;
    if (a.kind == IO_IOV) {
        struct iovec_ iov = {};
        if (bpf_probe_read_user(&iov, sizeof(iov), (void *)buf))
            return 0;
        buf = iov.base;
        if (iov.len < avail)
            avail = iov.len;
    }
    struct conn_key key = {.tgid = id >> 32, .fd = a.fd};
    struct conn_val *val = tracked.lookup(&key);
    u8 role = ROLE_DATAGRAM, transport = TRANSPORT_UDP;
    if (val) {
        if (a.direction == DIR_EGRESS)
            __sync_fetch_and_add(&val->bytes_sent, ret);
        else
            __sync_fetch_and_add(&val->bytes_received, ret);
        if (!val->capture)
            return 0;
        role = val->role;
        transport = val->transport;
        if (transport == TRANSPORT_TCP) {
            /* The same direction again after a long read/write: the rest of a long
             * message (a body), not a new head. A short one may be a head split
             * across writes, or the next request of a pipeline: captured. */
            int more = val->last_dir == a.direction && val->last_long;
            val->last_dir = a.direction;
            val->last_long = ret >= MAX_HEAD;
            if (more)
                return 0;
        }
    } else {
        /* Untracked socket: only datagrams from the DNS port are wanted. */
        u16 family = 0, port = 0;
        u8 addr[16] = {};
        if (!read_sockaddr(peer, &family, &port, addr) || port != DNS_PORT)
            return 0;
    }
    int zero = 0;
    struct data_record *rec = scratch.lookup(&zero);
    if (!rec)
        return 0;
    u64 n = avail;
    if (n > MAX_HEAD)
        n = MAX_HEAD;
    /* Keep the clamped value in one register so the verifier sees its bound. */
    asm volatile("" : "+r"(n));
    if (bpf_probe_read_user(rec->buf, n, (void *)buf))
        n = 0;
    rec->head.kind = EV_DATA;
    rec->head.role = role;
    rec->head.direction = a.direction;
    rec->head.transport = transport;
    rec->head.tgid = id >> 32;
    rec->head.fd = a.fd;
    rec->head.len = ret;
    rec->head.ts_ns = bpf_ktime_get_ns();
    rec->head.cap_len = n;
    rec->head.pad = 0;
    if (events.ringbuf_output(rec, sizeof(struct data_event) + n, BPF_RB_NO_WAKEUP))
        count_lost(LOST_DATA);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_read) {
    return io_enter(args->fd, (u64)args->buf, 0, IO_PLAIN, DIR_INGRESS, 0);
}
TRACEPOINT_PROBE(syscalls, sys_exit_read) { return io_exit(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_write) {
    return io_enter(args->fd, (u64)args->buf, 0, IO_PLAIN, DIR_EGRESS, 0);
}
TRACEPOINT_PROBE(syscalls, sys_exit_write) { return io_exit(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_readv) {
    return io_enter(args->fd, (u64)args->vec, 0, IO_IOV, DIR_INGRESS, 0);
}
TRACEPOINT_PROBE(syscalls, sys_exit_readv) { return io_exit(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_writev) {
    return io_enter(args->fd, (u64)args->vec, 0, IO_IOV, DIR_EGRESS, 0);
}
TRACEPOINT_PROBE(syscalls, sys_exit_writev) { return io_exit(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_sendto) {
    return io_enter(args->fd, (u64)args->buff, (u64)args->addr, IO_PLAIN, DIR_EGRESS, 0);
}
TRACEPOINT_PROBE(syscalls, sys_exit_sendto) { return io_exit(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_recvfrom) {
    return io_enter(args->fd, (u64)args->ubuf, (u64)args->addr, IO_PLAIN, DIR_INGRESS, 1);
}
TRACEPOINT_PROBE(syscalls, sys_exit_recvfrom) { return io_exit(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_sendmsg) {
    return io_enter(args->fd, (u64)args->msg, 0, IO_MSG, DIR_EGRESS, 0);
}
TRACEPOINT_PROBE(syscalls, sys_exit_sendmsg) { return io_exit(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_recvmsg) {
    return io_enter(args->fd, (u64)args->msg, 0, IO_MSG, DIR_INGRESS, 1);
}
TRACEPOINT_PROBE(syscalls, sys_exit_recvmsg) { return io_exit(args->ret); }

TRACEPOINT_PROBE(syscalls, sys_enter_close) {
    u64 id = bpf_get_current_pid_tgid();
    if (skip(id))
        return 0;
    struct conn_key key = {.tgid = id >> 32, .fd = args->fd};
    struct conn_val *val = tracked.lookup(&key);
    if (!val)
        return 0;
    u64 sent = val->bytes_sent, received = val->bytes_received;
    u8 role = val->role, transport = val->transport;
    tracked.delete(&key);
    send_end(EV_CLOSE, LOST_CLOSE, args->fd, role, transport, sent, received);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exit) {
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32;
    if (skip(id) || tgid != (u32)id || !owners.lookup(&tgid))
        return 0;
    owners.delete(&tgid);
    send_end(EV_EXIT, LOST_EXIT, -1, 0, 0, 0, 0);
    return 0;
}
