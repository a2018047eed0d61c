package node

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/logkv/logkv/replicate/transport"
)

// replicationTransport loads the node's certificate and makes the QUIC
// transport replication runs on. It returns the certificate's name, which is
// the node's replication id: a leader knows its followers by the names in
// their certificates, and refuses a follower whose Hello claims another.
//
// The certificate follows its files: a renewal (kvnode certs -node NAME
// again, or any tool that replaces the files) serves new handshakes within a
// second, and SIGHUP reloads at once. Connections already up keep theirs.
func (n *Node) replicationTransport() (transport.Transport, string, error) {
	c := n.cfg
	ca, cert, key := c.TLS.files()
	certs, err := transport.NewReloader(cert, key, ca, n.log.With("component", "tls"))
	if err != nil {
		return nil, "", fmt.Errorf("node: tls: %w (issue a certificate per node with kvnode certs -dir DIR -node NAME, and run the node with -tls-dir DIR/NAME)", err)
	}
	name := certs.Current().Name()
	if c.NodeID != "" && c.NodeID != name {
		return nil, "", fmt.Errorf("node: node_id is %q, but %s is issued to %q; a node's replication id is its certificate's name: remove node_id, or issue a certificate for it (kvnode certs -node %s)", c.NodeID, cert, name, c.NodeID)
	}
	tr, err := transport.NewQUIC(transport.QUICOptions{Identity: certs, Logger: n.log.With("component", "quic")})
	if err != nil {
		return nil, "", fmt.Errorf("node: replication transport: %w", err)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-hup:
				_ = certs.Reload() // it logs the outcome; a failure keeps the certificate in use
			case <-n.closed:
				return
			}
		}
	}()
	return tr, name, nil
}
