package node

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"
)

// Access control: who may connect, and which client may run which command.
//
// A node has a default user, whose password is Config.Password (or the
// -requirepass flag, KVNODE_PASSWORD, or a password file), and the users of
// Config.Users, each with an access level:
//
//	readonly   commands that do not write
//	readwrite  every data command, no administrative one
//	admin      everything (the default user)
//
// Without a password every client is the default user unauthenticated: data
// commands work, administrative ones (REPLICAOF, FLUSH*, SHUTDOWN, CONFIG
// SET, DEBUG, CLIENT KILL: those marked admin in the command table, or that
// call checkAdmin) are refused with an error saying how to enable them. This
// is default-deny: an open node never lets anyone destroy data or stop it.
//
// Protected mode (protected_mode, on by default) is Redis': while the default
// user has no password, a client from any address but loopback is sent
// Redis' DENIED error, reworded for kvnode's flags, and disconnected. The
// node starts either way (a warning is logged), as Redis does, so a node
// behind a firewall that only sees local traffic keeps working.
//
// Failed AUTH (and HELLO AUTH) attempts are throttled per source address (an
// IPv6 client by its /64): each failure doubles the address's backoff, from
// 1ms up to a second, and while it lasts AUTH from that address is refused
// without checking the password. The failing client's reply is delayed by
// the backoff and its pipeline stops there, so one connection cannot pipeline
// guesses either; the delay is a timer, never a sleep on the event loop.

// accessLevel is what a client may run.
type accessLevel uint8

const (
	accessNone  accessLevel = iota // must AUTH first
	accessRead                     // commands that do not write
	accessWrite                    // every data command
	accessAdmin                    // everything
)

// accessLevels names the levels in the config.
var accessLevels = map[string]accessLevel{"readonly": accessRead, "readwrite": accessWrite, "admin": accessAdmin}

// User is one ACL-style user of the config's users list.
type User struct {
	// Name is what AUTH name password and HELLO ... AUTH name password
	// give. "default" is the password key's user and cannot be listed.
	Name string `yaml:"name"`
	// Password is the user's password; PasswordFile names a file holding
	// it (its first line) instead. Exactly one must be set.
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	// Access is readonly (commands that do not write), readwrite (every
	// data command) or admin (everything).
	Access string `yaml:"access"`
}

// user is a user the node knows, with its password read.
type user struct {
	name   string
	pass   []byte
	access accessLevel
}

// Settings of enable_protected_configs and enable_debug_command, as Redis'.
const (
	enableNo    = "no"
	enableYes   = "yes"
	enableLocal = "local" // loopback clients only
)

// maxRenamedName bounds a renamed command's name.
const maxRenamedName = 64

// validateAccess checks the access settings; bad reports each problem.
func (c *Config) validateAccess(bad func(format string, args ...any)) {
	if c.Password != "" && c.PasswordFile != "" {
		bad("password and password_file are both set; keep one")
	}
	seen := map[string]bool{}
	for i, u := range c.Users {
		switch {
		case u.Name == "" || strings.ContainsAny(u.Name, " \t\r\n"):
			bad("users[%d]: name %q must be one word", i, u.Name)
		case u.Name == "default":
			bad("users[%d]: the default user's password is the password key; do not list it", i)
		case seen[u.Name]:
			bad("users[%d]: %q is listed twice", i, u.Name)
		}
		seen[u.Name] = true
		if (u.Password == "") == (u.PasswordFile == "") {
			bad("users[%d] (%s): set exactly one of password and password_file", i, u.Name)
		}
		if _, ok := accessLevels[u.Access]; !ok {
			bad("users[%d] (%s): access %q must be readonly, readwrite or admin", i, u.Name, u.Access)
		}
	}
	for _, key := range []struct{ name, v string }{{"enable_protected_configs", c.EnableProtectedConfigs}, {"enable_debug_command", c.EnableDebugCommand}} {
		if key.v != enableNo && key.v != enableYes && key.v != enableLocal {
			bad("%s %q must be no, yes or local (loopback clients only)", key.name, key.v)
		}
	}
	renamed := map[string]string{}
	for from, to := range c.RenameCommands {
		if commandTable[strings.ToLower(from)] == nil {
			bad("rename_commands: %q is not a command", from)
		}
		if len(to) > maxRenamedName || strings.ContainsAny(to, " \t\r\n") {
			bad("rename_commands: %s's new name %q must be one word of at most %d bytes", from, to, maxRenamedName)
		}
		if to == "" {
			continue
		}
		if prev, ok := renamed[strings.ToLower(to)]; ok {
			bad("rename_commands: %s and %s are both renamed %q", prev, from, to)
		}
		renamed[strings.ToLower(to)] = from
	}
	for to, from := range renamed {
		if cm := commandTable[to]; cm != nil {
			if _, moved := c.RenameCommands[to]; !moved {
				bad("rename_commands: %s cannot be renamed %q: that is another command's name (rename or disable it too)", from, to)
			}
		}
	}
}

// accessControl is a node's renamed commands and AUTH throttle. The users
// and whether the node is open are settings CONFIG SET requirepass changes
// (limits.go).
type accessControl struct {
	// table is the command table with rename_commands applied, or nil
	// when nothing is renamed.
	table    map[string]*command
	throttle authThrottle
}

// readPasswordFile returns the first line of the file at path.
func readPasswordFile(key, path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("node: %s: %w", key, err)
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) == 0 {
		return nil, fmt.Errorf("node: %s: %s starts with an empty line; write the password on its first line", key, path)
	}
	return line, nil
}

// initAccess reads the passwords, builds the node's command table and
// publishes the first settings (initLimits).
func (n *Node) initAccess() error {
	a := &n.sec.access
	users := map[string]*user{}
	a.throttle.init()
	pass := []byte(n.cfg.Password)
	if n.cfg.PasswordFile != "" {
		var err error
		if pass, err = readPasswordFile("password_file", n.cfg.PasswordFile); err != nil {
			return err
		}
	}
	if len(pass) > 0 {
		users["default"] = &user{name: "default", pass: pass, access: accessAdmin}
	}
	for _, u := range n.cfg.Users {
		p := []byte(u.Password)
		if u.PasswordFile != "" {
			var err error
			if p, err = readPasswordFile("users "+u.Name+" password_file", u.PasswordFile); err != nil {
				return err
			}
		}
		users[u.Name] = &user{name: u.Name, pass: p, access: accessLevels[u.Access]}
	}
	open := len(pass) == 0
	n.initLimits(users, open)
	if len(n.cfg.RenameCommands) > 0 {
		a.table = make(map[string]*command, len(commandTable))
		for name, cm := range commandTable {
			a.table[name] = cm
		}
		for from := range n.cfg.RenameCommands {
			delete(a.table, strings.ToLower(from))
		}
		for from, to := range n.cfg.RenameCommands {
			if to != "" {
				a.table[strings.ToLower(to)] = commandTable[strings.ToLower(from)]
			}
		}
	}
	if open && !isLoopbackListen(n.cfg.Listen) {
		if n.settings().protected {
			n.log.Warn("no password set and listening beyond loopback: protected mode refuses every client but loopback ones; set a password (-requirepass-file, KVNODE_PASSWORD or password in the config)", "listen", n.cfg.Listen)
		} else {
			n.log.Warn("no password set, protected mode off, and listening beyond loopback: anyone who reaches the port can read and write every key", "listen", n.cfg.Listen)
		}
	}
	return nil
}

// isLoopbackListen reports whether addr (host:port) only accepts loopback
// clients.
func isLoopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// startAccess is the access a new client has.
func (s *settings) startAccess() accessLevel {
	if s.open {
		return accessWrite
	}
	return accessNone
}

// lookup finds the command named name, under its configured name.
func (n *Node) lookup(name []byte) *command {
	t := n.sec.access.table
	if t == nil {
		return lookup(name)
	}
	var buf [maxRenamedName]byte
	if len(name) > len(buf) {
		return nil
	}
	for i, b := range name {
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		buf[i] = b
	}
	return t[string(buf[:len(name)])]
}

// Replies about access.
const (
	errAdminOpen = "NOPERM administrative commands are disabled while the node has no password: " +
		"start it with a password (-requirepass-file FILE, KVNODE_PASSWORD, or password in the config) and AUTH with it"
	errAdminUser = "NOPERM this user has no permissions to run the '%s' command: AUTH as an admin user (the default user, with the node's password)"
	errWriteUser = "NOPERM this user has no permissions to run the '%s' command: the user is readonly"
	errNotLocal  = "ERR %s is only allowed from loopback clients (%s local)"
	errDisabled  = "ERR %s is disabled: set %s to yes (or local) in the node's config"
)

// errDenied is Redis' protected-mode refusal, in kvnode's words.
const errDenied = "DENIED kvnode is running in protected mode because protected mode is enabled and no password is set for the default user. " +
	"In this mode connections are only accepted from the loopback interface. " +
	"If you want to connect from external computers to kvnode you may adopt one of the following solutions: " +
	"1) Set a password for the default user, with -requirepass-file FILE, the KVNODE_PASSWORD environment variable or password in the config file, and restart the node; clients then AUTH with it. " +
	"2) If the node is not reachable from the internet, disable protected mode: protected_mode: no in the config file, or the -protected-mode=false flag, and restart the node. " +
	"NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside."

// permitted reports whether c may run cm, and if not, fails the command.
func (n *Node) permitted(c *client, cm *command) bool {
	switch {
	case cm.admin:
		return n.checkAdmin(c)
	case cm.write && c.access < accessWrite && !readOnlyExec(c, cm):
		c.fail(fmt.Sprintf(errWriteUser, cm.name))
		return false
	}
	return true
}

// checkAdmin reports whether c may run an administrative command (one that
// can destroy data or stop the node), and if not, fails the command with an
// error saying how to get access. Commands marked admin in the table are
// checked before they run; a handler calls it for admin subcommands (CONFIG
// SET, CLIENT KILL, ...).
func (n *Node) checkAdmin(c *client) bool {
	switch {
	case c.access == accessAdmin:
		return true
	case n.settings().open && c.user == nil:
		c.fail(errAdminOpen)
	default:
		name := "?"
		if c.cmd != nil {
			name = c.cmd.name
		}
		c.fail(fmt.Sprintf(errAdminUser, name))
	}
	return false
}

// checkProtectedConfig reports whether c may change a protected config (as
// Redis' enable-protected-configs guards dir and dbfilename): an admin, if
// enable_protected_configs allows it from c's address. It fails the command
// otherwise. CONFIG SET calls it for settings that change where data goes.
func (n *Node) checkProtectedConfig(c *client, name string) bool {
	return n.checkAdmin(c) && n.checkEnabled(c, "CONFIG SET "+name, "enable_protected_configs", n.cfg.EnableProtectedConfigs)
}

// checkDebug reports whether c may run DEBUG: an admin, if
// enable_debug_command allows it from c's address. It fails the command
// otherwise.
func (n *Node) checkDebug(c *client) bool {
	return n.checkAdmin(c) && n.checkEnabled(c, "DEBUG", "enable_debug_command", n.cfg.EnableDebugCommand)
}

func (n *Node) checkEnabled(c *client, what, key, setting string) bool {
	switch {
	case setting == enableYes, setting == enableLocal && c.local:
		return true
	case setting == enableLocal:
		c.fail(fmt.Sprintf(errNotLocal, what, key))
	default:
		c.fail(fmt.Sprintf(errDisabled, what, key))
	}
	return false
}

// authenticate checks name and pass for c (AUTH and HELLO AUTH), with the
// throttle, and on success gives c the user's access. On failure it fails
// the command and sets c.authDelay, which holds the reply back.
func (n *Node) authenticate(c *client, name, pass []byte) bool {
	a, s := &n.sec.access, n.settings()
	now := time.Now()
	if wait := a.throttle.blocked(c.source, now); wait > 0 {
		c.fail(fmt.Sprintf("WRONGPASS too many failed AUTH attempts from this address; wait %v before the next", wait.Round(time.Millisecond)))
		c.authDelay = wait
		n.metrics.authFailures.Inc()
		return false
	}
	u := s.users[string(name)]
	if u != nil && constantTimeEqual(pass, u.pass) {
		a.throttle.succeeded(c.source)
		c.user, c.access, c.authed = u, u.access, true
		return true
	}
	if u == nil && s.open && string(name) == "default" {
		// Redis' nopass default user takes any password; it stays
		// without admin rights here.
		c.user, c.access, c.authed = nil, accessWrite, true
		return true
	}
	c.fail(errWrongPass)
	c.authDelay = a.throttle.failed(c.source, now)
	n.metrics.authFailures.Inc()
	return false
}

// cmdAuthUser is AUTH [username] password.
func (n *Node) cmdAuthUser(c *client, args [][]byte) {
	if len(args) > 3 {
		c.fail(errSyntax)
		return
	}
	if len(args) == 2 && n.settings().open {
		c.fail(errNoPassword)
		return
	}
	name := []byte("default")
	if len(args) == 3 {
		name = args[1]
	}
	if n.authenticate(c, name, args[len(args)-1]) {
		c.conn.WriteString("OK")
	}
}

// authThrottle tracks failed AUTH attempts per source address.
type authThrottle struct {
	mu      sync.Mutex
	sources map[netip.Prefix]*authFailures
}

// authFailures is one source's recent failures.
type authFailures struct {
	count int
	until time.Time // no attempt is checked before
	last  time.Time
}

const (
	authBaseDelay  = time.Millisecond
	authMaxDelay   = time.Second
	authForgetIdle = 10 * time.Minute // a source quiet this long starts over
	authMaxSources = 1 << 16          // bounds the table under a spoofing-free flood of sources
)

func (t *authThrottle) init() { t.sources = map[netip.Prefix]*authFailures{} }

// blocked returns how long source must still wait before an attempt is
// checked.
func (t *authThrottle) blocked(source netip.Prefix, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f := t.sources[source]; f != nil && now.Before(f.until) {
		return f.until.Sub(now)
	}
	return 0
}

// failed records a failure from source and returns its backoff.
func (t *authThrottle) failed(source netip.Prefix, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.sources[source]
	if f == nil || now.Sub(f.last) > authForgetIdle {
		if f == nil && len(t.sources) >= authMaxSources {
			t.evict(now)
		}
		f = &authFailures{}
		t.sources[source] = f
	}
	f.count++
	d := authMaxDelay
	if f.count <= 11 {
		d = min(authMaxDelay, authBaseDelay<<(f.count-1))
	}
	f.last, f.until = now, now.Add(d)
	return d
}

// succeeded forgets source's failures.
func (t *authThrottle) succeeded(source netip.Prefix) {
	t.mu.Lock()
	delete(t.sources, source)
	t.mu.Unlock()
}

// evict makes room: it drops the sources idle past authForgetIdle, and if
// none is, any one (a flood of sources pays for that with its own entries).
func (t *authThrottle) evict(now time.Time) {
	for s, f := range t.sources {
		if now.Sub(f.last) > authForgetIdle {
			delete(t.sources, s)
		}
	}
	for s := range t.sources {
		if len(t.sources) < authMaxSources {
			return
		}
		delete(t.sources, s)
	}
}

// sourceOfString is sourceOf for an address written host:port.
func sourceOfString(addr string) (netip.Prefix, bool) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return netip.Prefix{}, false
	}
	return sourceOfAddr(ap.Addr())
}

// sourceOf is the throttle's key for a client address: its IPv4 address, or
// its IPv6 /64, what one host can easily vary within.
func sourceOf(addr net.Addr) (netip.Prefix, bool) {
	return sourceOfString(addr.String())
}

// sourceOfAddr is sourceOf for an IP address.
func sourceOfAddr(ip netip.Addr) (netip.Prefix, bool) {
	ip = ip.Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p, ip.IsLoopback()
}
