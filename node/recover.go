package node

import "runtime/debug"

// recoverCommand, deferred around a command, turns its panic into that
// client's error: the stack is logged, logkv_command_panics_total counts
// it, and the node and every other client go on. Locks the handler held
// with defer are released on the way; the client's replies so far stand.
func (n *Node) recoverCommand(c *client, cm *command) {
	p := recover()
	if p == nil {
		return
	}
	n.metrics.panics.Inc()
	name := "unknown"
	if cm != nil {
		name = cm.name
	}
	n.log.Error("command panicked; the client gets an error, the node goes on", "cmd", name, "panic", p, "stack", string(debug.Stack()))
	c.fail("ERR internal error")
}
