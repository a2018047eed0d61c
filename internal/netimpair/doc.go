// Package netimpair is a user-space UDP proxy that impairs the traffic it
// forwards: delay with jitter, random loss, reordering, duplication and a
// partition switch. It stands in for tc netem in tests, so network-fault
// tests run on any machine (no root, no sch_netem kernel module, no network
// namespaces), CI included.
//
// # Topology
//
// A Proxy listens on one UDP socket (127.0.0.1:0 by default) and forwards
// every datagram to one target address. Each client address that sends to
// the proxy gets its own upstream socket, so the target sees one peer per
// client, and its replies on that socket go back to that client:
//
//	client A ──┐                ┌── upstream socket A ──┐
//	           ├─ proxy socket ─┤                       ├── target
//	client B ──┘                └── upstream socket B ──┘
//
// A flow lives until the proxy is closed: a client that redials from a new
// port (as a QUIC dialer does) starts a new flow, and the old one idles.
//
// To put a proxy between a QUIC client and server, point the client at
// Proxy.Addr instead of the server's address. A TLS client that checks the
// server name against the dialed host keeps working when both are on
// 127.0.0.1.
//
// # Impairments
//
// Each direction (Up: client to target; Down: target to client) of each
// client's flow runs its own pipe, a goroutine with a timer and a queue
// ordered by due time; no packet ever waits on another's delay. For every
// datagram, in this order, a pipe:
//
//  1. drops it while the proxy is partitioned;
//  2. drops it with probability Loss;
//  3. schedules it Delay ± a uniform Jitter from now (jitter alone can
//     reorder packets closer together than 2·Jitter, as netem's does);
//  4. with probability Duplicate, schedules a copy with its own jitter;
//  5. with probability Reorder, holds it back and releases it right after
//     the next datagram of the same pipe, or after HoldMax if none comes.
//
// A partition also drops the packets already queued when it starts, like a
// link going down; healing lets new packets through again.
//
// # Determinism
//
// Every pipe draws from its own PCG generator (math/rand/v2) seeded from
// Options.Seed, the flow's index (in order of first packet) and the
// direction, so the same seed and the same sequence of datagrams on a flow
// give the same losses, holds and jitter. Timing on a real network stack is
// of course not deterministic.
package netimpair
