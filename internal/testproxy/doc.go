// Package testproxy owns a TCP proxy on loopback that a test puts between a
// client and a server (typically the servers under test and PostgreSQL)
// to make the network between them fail on command:
//
//   - Cut closes the proxy's listener and every connection through it:
//     what a client sees when the server restarts or a firewall resets
//     connections. New connections are refused until Resume.
//   - Partition stops forwarding bytes in both directions without closing
//     anything, and accepts new connections without ever connecting them
//     onwards: what a client sees when packets vanish. Nothing tells
//     either side; only their own timeouts can. The proxy's kernel still
//     acknowledges what the client sends (up to its socket buffers), so
//     TCP keepalives and TCP_USER_TIMEOUT between the client and the
//     proxy do not fire: a client detects the partition by its
//     application-level timeouts (context deadlines, connect timeouts).
//   - Resume undoes either: the listener listens again on the same
//     address, held connections are connected onwards, and bytes held
//     during a partition are delivered, as TCP retransmission would once
//     a partition heals.
//
// The proxy is closed, with every connection, when the test ends. It is
// for tests only.
package testproxy
