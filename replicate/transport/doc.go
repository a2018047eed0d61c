// Package transport carries replication streams between nodes: QUIC with
// mutual TLS for real use, and an in-memory network with the same interface
// for fast, deterministic tests.
//
// A replication connection is one bidirectional, ordered byte stream: the
// follower dials the leader and the pair speaks the protocol of package
// replicate/wire over it. Flow control is the transport's: a writer blocks
// while the peer's window is full.
//
// # QUIC
//
// QUIC runs with ALPN "logkv-repl/1" and TLS 1.3. Both sides present a
// certificate signed by the configured CA and verify the peer's. The server
// makes the checks of tls.RequireAndVerifyClientCert itself (verifyClient:
// a certificate is required, chaining to the CAs, valid now, for client
// authentication), so that it can log each refused follower with its address
// and the reason; crypto/tls would refuse it silently. A refused handshake
// (wrong CA, missing or expired certificate) fails the dial with the TLS
// reason, which the dialing side logs too. Keep-alives are sent at a third of the idle timeout, so
// an idle but healthy connection never times out.
//
// # Certificates
//
// NewCA and (*CA).Issue make a small PKI with crypto/x509 (ECDSA P-256), and
// GenerateCerts writes one to a directory: ca.crt, ca.key and, per node,
// <node>.crt and <node>.key, PEM-encoded. Node certificates carry both the
// server and client extended key usages, since a node both listens and
// dials. Tests use them, and so can the kvnode certs command.
package transport
