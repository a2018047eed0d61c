// Package transport carries replication streams between nodes: QUIC with
// mutual TLS for real use, TLS over TCP with the same identity and checks
// for bulk streams (a slot move's copy), and an in-memory network with the
// same interface for fast, deterministic tests.
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
// reason, which the dialing side logs too: under TLS 1.3 a client's
// handshake ends before the server has checked the client's certificate, so
// the refusal may reach the follower at Dial, at opening the stream or at
// its first Read or Write, and each of them logs it before returning the
// error. Keep-alives are sent at a third of the idle timeout, so an idle but
// healthy connection never times out. A listener's UDP socket is the
// transport's own, not quic-go's: Close sends CONNECTION_CLOSE on each
// accepted connection and closes the socket before it returns, so a node
// that stops leading and is elected again can listen on the same address at
// once (quic-go keeps a socket it made bound until its connections drain).
//
// # TCP
//
// QUIC.TCP gives a transport over TCP with the QUIC transport's identity,
// its certificate checks (verifyClient) and its refusal logs; TLS 1.3, the
// same ALPN. It is for one-way bulk streams: QUIC seals, sends and
// acknowledges each datagram of about 1.4 KB in user space, where the
// kernel's TCP moves large segments and TLS seals 16 KB records, so a bulk
// stream costs about a third of the CPU (BenchmarkQUICStream,
// BenchmarkTCPStream). A stream is one connection; a dead peer is found by
// keep-alives (every KeepAlive, three probes) and by a write deadline of
// IdleTimeout set before each Write, and Close closes the connection at
// once, unblocking a Write. A TCP listener's Close leaves the streams it
// accepted open: each is its owner's to close.
//
// A TCP listener runs at most 32 TLS handshakes at once (maxHandshakes) and
// closes a connection beyond them as soon as it is accepted: an
// unauthenticated dialer costs a descriptor for at most HandshakeTimeout,
// and a flood of them cannot take the process's descriptors. An Accept
// error other than Close (EMFILE, ENFILE) is logged and retried after a
// backoff of 5 ms doubling to 1 s, as net/http does, so the listener
// accepts again once descriptors are free.
//
// # Certificates
//
// NewCA and (*CA).Issue make a small PKI with crypto/x509 (ECDSA P-256).
// WriteCA and (*CA).WriteNode lay it out on disk, as kvnode certs does:
//
//	DIR/ca/ca.crt      the CA certificate                       0644
//	DIR/ca/ca.key      the CA key: it signs node certificates   0600
//	DIR/NAME/ca.crt    the CA certificate, for node NAME        0644
//	DIR/NAME/node.crt  NAME's certificate, common name NAME     0644
//	DIR/NAME/node.key  NAME's key                               0600
//
// Directories are 0700. No node's directory holds the CA key: a node that
// could read it could mint a certificate for any other. Every file is
// replaced atomically (a temporary file renamed over it), so a key that
// was once 0644 is 0600 after a rewrite, and a node reloading meanwhile
// reads a whole file. Node certificates carry both the server and client
// extended key usages, since a node both listens and dials.
//
// # Identity
//
// A node's name is its certificate's common name. Stream.Peer reports the
// name the transport authenticated, and a replication leader uses it as the
// follower's id, refusing a follower whose Hello claims another: a peer
// cannot take over another follower's place by saying its name.
//
// # Reload
//
// QUICOptions.Identity is an IdentitySource, asked at each handshake: a fixed
// *Identity, or a *Reloader that follows its files (it looks at them at most
// once a second and loads them when they changed; Reload loads them at once,
// which kvnode does on SIGHUP). A renewed certificate or a new CA bundle
// serves new connections without a restart; a load that fails keeps the
// identity in use.
package transport
