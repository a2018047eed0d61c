package node

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// COMMAND COUNT, LIST, INFO, DOCS and GETKEYS, in Redis 7's reply shapes,
// for every command in the table. The table says a command's arity, whether
// it writes and where its keys are; commandDocs below adds what Redis
// reports and the table has no use for: flags, ACL categories, key spec
// flags, and the documentation (group, version, complexity, summary).

// commandDoc is the documentation Redis 7 reports for a command.
type commandDoc struct {
	group, since, complexity, summary string
	flags                             []string // beyond write/readonly, which the table says
	acl                               []string // ACL categories beyond @read/@write
	keyFlags                          []string // the key spec's flags, e.g. RW access update
}

// docOf returns the documentation of cm, with defaults for a command
// documented nowhere.
func docOf(cm *command) commandDoc {
	if d, ok := commandDocs[cm.name]; ok {
		return d
	}
	return commandDoc{group: "generic", since: "7.0.0", complexity: "O(1)", summary: "The " + strings.ToUpper(cm.name) + " command."}
}

// cmdFlags are COMMAND INFO's flags for cm.
func cmdFlags(cm *command) []string {
	var f []string
	if cm.write {
		f = append(f, "write")
	} else if cm.first > 0 {
		f = append(f, "readonly")
	}
	if cm.admin {
		f = append(f, "admin")
	}
	f = append(f, docOf(cm).flags...)
	if cm.noAuth {
		f = append(f, "no_auth")
	}
	return f
}

// cmdACL are COMMAND INFO's ACL categories for cm.
func cmdACL(cm *command) []string {
	var a []string
	switch {
	case cm.write:
		a = append(a, "@write")
	case cm.first > 0:
		a = append(a, "@read")
	}
	if cm.admin {
		a = append(a, "@admin")
	}
	return append(a, docOf(cm).acl...)
}

// keySpecs describes where cm's keys are, as Redis 7 key specs: one range
// from first (last < 0: to the end; step apart).
type keySpec struct {
	index, lastkey, keystep int
}

func keySpecsOf(cm *command) []keySpec {
	if cm.first <= 0 {
		return nil
	}
	if cm.last < 0 {
		return []keySpec{{cm.first, cm.last, cm.step}}
	}
	return []keySpec{{cm.first, cm.last - cm.first, cm.step}}
}

// cmdCommand: COMMAND [COUNT | LIST | INFO | DOCS | GETKEYS | HELP].
func cmdCommand(n *Node, c *client, args [][]byte) {
	if len(args) == 1 {
		writeCommandInfos(c, commandList)
		return
	}
	sub, ok := subcommand(c, args)
	if !ok {
		return
	}
	switch sub {
	case "count":
		c.conn.WriteInt(len(commandList))
	case "list":
		commandListReply(c, args[2:])
	case "info":
		if len(args) == 2 {
			writeCommandInfos(c, commandList)
			return
		}
		cmds := make([]*command, 0, len(args)-2)
		for _, a := range args[2:] {
			cmds = append(cmds, c.conn.n.lookup(a))
		}
		writeCommandInfos(c, cmds)
	case "docs":
		type doc struct {
			name string
			d    commandDoc
		}
		var docs []doc
		if len(args) == 2 {
			for _, cm := range commandList {
				docs = append(docs, doc{cm.name, docOf(cm)})
			}
		}
		for _, a := range args[2:] {
			if cm := c.conn.n.lookup(a); cm != nil {
				docs = append(docs, doc{cm.name, docOf(cm)})
				continue
			}
			// A subcommand by its full name, as Redis looks it up.
			container, sub, ok := strings.Cut(strings.ToLower(string(a)), "|")
			if cm := c.conn.n.lookup([]byte(container)); ok && cm != nil {
				if d, ok := subcommandDoc(cm.name, sub); ok {
					docs = append(docs, doc{cm.name + "|" + sub, d})
				}
			}
		}
		c.conn.WriteMap(len(docs))
		for _, e := range docs {
			c.conn.WriteBulkString(e.name)
			writeDoc(c, e.name, e.d)
		}
	case "getkeys", "getkeysandflags":
		commandGetKeys(c, args[2:], sub == "getkeysandflags")
	case "help":
		writeHelp(c, "COMMAND",
			"(no subcommand)", "    Return details about all Redis commands.",
			"COUNT", "    Return the total number of commands in this Redis server.",
			"LIST", "    Return a list of all commands in this Redis server.",
			"INFO [<command-name> ...]", "    Return details about multiple Redis commands.",
			"    If no command names are given, documentation details for all",
			"    commands are returned.",
			"DOCS [<command-name> ...]", "    Return documentation details about multiple Redis commands.",
			"    If no command names are given, documentation details for all",
			"    commands are returned.",
			"GETKEYS <full-command>", "    Return the keys from a full Redis command.",
			"GETKEYSANDFLAGS <full-command>", "    Return the keys and the access flags from a full Redis command.")
	}
}

// commandListReply: COMMAND LIST [FILTERBY MODULE name | ACLCAT cat |
// PATTERN pattern].
func commandListReply(c *client, args [][]byte) {
	var keep func(cm *command) bool
	switch {
	case len(args) == 0:
		keep = func(*command) bool { return true }
	case len(args) == 3 && strings.EqualFold(string(args[0]), "filterby"):
		v := string(args[2])
		switch strings.ToLower(string(args[1])) {
		case "module":
			keep = func(*command) bool { return false }
		case "aclcat":
			keep = func(cm *command) bool {
				for _, a := range cmdACL(cm) {
					if strings.EqualFold(a[1:], v) {
						return true
					}
				}
				return false
			}
		case "pattern":
			keep = func(cm *command) bool { return globMatchFold(args[2], cm.name) }
		default:
			c.fail(errSyntax)
			return
		}
	default:
		c.fail(errSyntax)
		return
	}
	var names []string
	for _, cm := range commandList {
		if keep(cm) {
			names = append(names, cm.name)
		}
	}
	c.conn.WriteArray(len(names))
	for _, name := range names {
		c.conn.WriteBulkString(name)
	}
}

// writeCommandInfos writes COMMAND INFO's reply: per command (nil: null)
// name, arity, flags, first key, last key, step, ACL categories, tips, key
// specs and subcommands.
func writeCommandInfos(c *client, cmds []*command) {
	c.conn.WriteArray(len(cmds))
	for _, cm := range cmds {
		if cm == nil {
			c.conn.WriteNullArray()
			continue
		}
		writeCommandInfo(c, cm.name, cm.arity, cmdFlags(cm), cm.first, cm.last, cm.step, cmdACL(cm), keySpecsOf(cm), docOf(cm).keyFlags)
		subs := subcommands[cm.name]
		names := make([]string, 0, len(subs))
		for s := range subs {
			names = append(names, s)
		}
		sort.Strings(names)
		c.conn.WriteArray(len(names))
		for _, s := range names {
			flags := []string{"loading", "stale"}
			if cm.admin {
				flags = append([]string{"admin"}, flags...)
			}
			writeCommandInfo(c, cm.name+"|"+s, subs[s], flags, 0, 0, 0, []string{"@slow"}, nil, nil)
			c.conn.WriteArray(0)
		}
	}
}

// writeCommandInfo writes the first nine fields of a COMMAND INFO entry;
// the subcommands follow.
func writeCommandInfo(c *client, name string, arity int, flags []string, first, last, step int, acl []string, specs []keySpec, keyFlags []string) {
	c.conn.WriteArray(10)
	c.conn.WriteBulkString(name)
	c.conn.WriteInt(arity)
	c.conn.WriteSet(len(flags))
	for _, f := range flags {
		c.conn.WriteString(f)
	}
	c.conn.WriteInt(first)
	c.conn.WriteInt(last)
	c.conn.WriteInt(step)
	c.conn.WriteSet(len(acl))
	for _, a := range acl {
		c.conn.WriteString(a)
	}
	c.conn.WriteSet(0) // tips
	c.conn.WriteSet(len(specs))
	for _, s := range specs {
		c.conn.WriteMap(3)
		c.conn.WriteBulkString("flags")
		c.conn.WriteSet(len(keyFlags))
		for _, f := range keyFlags {
			c.conn.WriteString(f)
		}
		c.conn.WriteBulkString("begin_search")
		c.conn.WriteMap(2)
		c.conn.WriteBulkString("type")
		c.conn.WriteBulkString("index")
		c.conn.WriteBulkString("spec")
		c.conn.WriteMap(1)
		c.conn.WriteBulkString("index")
		c.conn.WriteInt(s.index)
		c.conn.WriteBulkString("find_keys")
		c.conn.WriteMap(2)
		c.conn.WriteBulkString("type")
		c.conn.WriteBulkString("range")
		c.conn.WriteBulkString("spec")
		c.conn.WriteMap(3)
		c.conn.WriteBulkString("lastkey")
		c.conn.WriteInt(s.lastkey)
		c.conn.WriteBulkString("keystep")
		c.conn.WriteInt(s.keystep)
		c.conn.WriteBulkString("limit")
		c.conn.WriteInt(0)
	}
}

// subcommandDoc is the documentation of container|sub, and whether kvnode
// serves that subcommand.
func subcommandDoc(container, sub string) (commandDoc, bool) {
	if _, ok := subcommands[container][sub]; !ok {
		return commandDoc{}, false
	}
	full := container + "|" + sub
	if d, ok := commandDocs[full]; ok {
		return d, true
	}
	// Every served subcommand is in subcommandDocTable (a test checks);
	// this is what a new one shows until it is.
	return commandDoc{group: commandDocs[container].group, since: commandDocs[container].since, complexity: "O(1)",
		summary: strings.ToUpper(container+" "+sub) + "."}, true
}

// writeDoc writes the COMMAND DOCS map of the command or subcommand name
// (client|list): Redis' fields in Redis' order, a container's subcommands
// last, each in the same shape. Redis lists subcommands in its hash
// table's order, which changes with every start; kvnode sorts them.
func writeDoc(c *client, name string, d commandDoc) {
	subs := subcommands[name]
	args := commandArgs[name]
	extras := commandDocExtras[name]
	pairs := 4 + extras.pairs()
	if d.complexity == "" {
		pairs-- // Redis gives MONITOR none
	}
	if len(subs) > 0 {
		pairs++
	}
	if len(args) > 0 {
		pairs++
	}
	c.conn.WriteMap(pairs)
	for _, kv := range [][2]string{{"summary", d.summary}, {"since", d.since}, {"group", d.group}, {"complexity", d.complexity}} {
		if kv[1] == "" {
			continue
		}
		c.conn.WriteBulkString(kv[0])
		c.conn.WriteBulkString(kv[1])
	}
	extras.write(c)
	if len(args) > 0 {
		c.conn.WriteBulkString("arguments")
		writeCmdArgs(c, args)
	}
	if len(subs) == 0 {
		return
	}
	names := make([]string, 0, len(subs))
	for s := range subs {
		names = append(names, s)
	}
	sort.Strings(names)
	c.conn.WriteBulkString("subcommands")
	c.conn.WriteMap(len(names))
	for _, s := range names {
		sd, _ := subcommandDoc(name, s)
		c.conn.WriteBulkString(name + "|" + s)
		writeDoc(c, name+"|"+s, sd)
	}
}

// commandGetKeys: COMMAND GETKEYS command arg... lists the keys the
// command would name; GETKEYSANDFLAGS adds each key's flags.
func commandGetKeys(c *client, args [][]byte, withFlags bool) {
	cm := c.conn.n.lookup(args[0])
	if cm == nil {
		c.fail("ERR Invalid command specified")
		return
	}
	if (cm.arity > 0 && len(args) != cm.arity) || (cm.arity < 0 && len(args) < -cm.arity) {
		c.fail("ERR Invalid number of arguments specified for command")
		return
	}
	if cm.first <= 0 {
		c.fail("ERR The command has no key arguments")
		return
	}
	last := cm.last
	if last < 0 {
		last = len(args) + last
	}
	var keys [][]byte
	for i := cm.first; i <= last && i < len(args); i += max(cm.step, 1) {
		keys = append(keys, args[i])
	}
	c.conn.WriteArray(len(keys))
	flags := docOf(cm).keyFlags
	for _, k := range keys {
		if !withFlags {
			c.conn.WriteBulk(k)
			continue
		}
		c.conn.WriteArray(2)
		c.conn.WriteBulk(k)
		c.conn.WriteSet(len(flags))
		for _, f := range flags {
			c.conn.WriteString(f)
		}
	}
}

// allowedInMulti reports whether MULTI may queue cm. Redis refuses the
// commands it flags no_multi (SAVE and SHUTDOWN among those kvnode serves)
// when they are queued, which aborts the transaction: a SHUTDOWN queued in
// MULTI must not stop the node at EXEC.
func allowedInMulti(cm *command) bool {
	return !slices.Contains(commandDocs[cm.name].flags, "no_multi")
}

// commandDocs documents the commands logkv serves, from Redis 7's command
// reference (the summaries are Redis', the flags those Redis reports).
var commandDocs = map[string]commandDoc{}

func init() {
	// name|group|since|complexity|extra flags|extra acl|key spec flags|summary
	for _, line := range strings.Split(strings.TrimSpace(commandDocTable), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 8 {
			panic(fmt.Sprintf("node: bad command doc line %q", line))
		}
		commandDocs[f[0]] = commandDoc{group: f[1], since: f[2], complexity: f[3], flags: strings.Fields(f[4]), acl: strings.Fields(f[5]), keyFlags: strings.Fields(f[6]), summary: f[7]}
	}
	for _, line := range strings.Split(strings.TrimSpace(subcommandDocTable), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 6 {
			panic(fmt.Sprintf("node: bad subcommand doc line %q", line))
		}
		commandDocs[f[0]+"|"+f[1]] = commandDoc{group: f[2], since: f[3], complexity: f[4], summary: f[5]}
	}
}

// subcommandDocTable documents the subcommands kvnode serves, as
// redis-server 7.0.15's COMMAND DOCS does (CLIENT NO-TOUCH and SETINFO
// came in Redis 7.2; theirs are 7.2's): container|subcommand|group|since|
// complexity|summary. Their arguments are in commandArgTable and their
// history in commandDocExtras, under the full name (client|list).
// TestCommandDocsWhole compares every one with redis-server's.
const subcommandDocTable = `
client|caching|connection|6.0.0|O(1)|Instruct the server about tracking or not keys in the next request
client|getname|connection|2.6.9|O(1)|Get the current connection name
client|getredir|connection|6.0.0|O(1)|Get tracking notifications redirection client ID if any
client|help|connection|5.0.0|O(1)|Show helpful text about the different subcommands
client|id|connection|5.0.0|O(1)|Returns the client ID for the current connection
client|info|connection|6.2.0|O(1)|Returns information about the current client connection.
client|kill|connection|2.4.0|O(N) where N is the number of client connections|Kill the connection of a client
client|list|connection|2.4.0|O(N) where N is the number of client connections|Get the list of client connections
client|no-evict|connection|7.0.0|O(1)|Set client eviction mode for the current connection
client|pause|connection|2.9.50|O(1)|Stop processing commands from clients for some time
client|reply|connection|3.2.0|O(1)|Instruct the server whether to reply to commands
client|setname|connection|2.6.9|O(1)|Set the current connection name
client|tracking|connection|6.0.0|O(1). Some options may introduce additional complexity.|Enable or disable server assisted client side caching support
client|trackinginfo|connection|6.2.0|O(1)|Return information about server assisted client side caching for the current connection
client|unblock|connection|5.0.0|O(log N) where N is the number of client connections|Unblock a client blocked in a blocking command from a different connection
client|unpause|connection|6.2.0|O(N) Where N is the number of paused clients|Resume processing of clients that were paused
config|get|server|2.0.0|O(N) when N is the number of configuration parameters provided|Get the values of configuration parameters
config|set|server|2.0.0|O(N) when N is the number of configuration parameters provided|Set configuration parameters to the given values
config|resetstat|server|2.0.0|O(1)|Reset the stats returned by INFO
config|rewrite|server|2.8.0|O(1)|Rewrite the configuration file with the in memory configuration
config|help|server|5.0.0|O(1)|Show helpful text about the different subcommands
command|count|server|2.8.13|O(1)|Get total number of Redis commands
command|docs|server|7.0.0|O(N) where N is the number of commands to look up|Get array of specific Redis command documentation
command|getkeys|server|2.8.13|O(N) where N is the number of arguments to the command|Extract keys given a full Redis command
command|getkeysandflags|server|7.0.0|O(N) where N is the number of arguments to the command|Extract keys and access flags given a full Redis command
command|help|server|5.0.0|O(1)|Show helpful text about the different subcommands
command|info|server|2.8.13|O(N) where N is the number of commands to look up|Get array of specific Redis command details, or all when no argument is given.
command|list|server|7.0.0|O(N) where N is the total number of Redis commands|Get an array of Redis command names
slowlog|get|server|2.2.12|O(N) where N is the number of entries returned|Get the slow log's entries
slowlog|len|server|2.2.12|O(1)|Get the slow log's length
slowlog|reset|server|2.2.12|O(N) where N is the number of entries in the slowlog|Clear all entries from the slow log
slowlog|help|server|6.2.0|O(1)|Show helpful text about the different subcommands
latency|doctor|server|2.8.13|O(1)|Return a human readable latency analysis report.
latency|graph|server|2.8.13|O(1)|Return a latency graph for the event.
latency|help|server|2.8.13|O(1)|Show helpful text about the different subcommands.
latency|histogram|server|7.0.0|O(N) where N is the number of commands with latency information being retrieved.|Return the cumulative distribution of latencies of a subset of commands or all.
latency|history|server|2.8.13|O(1)|Return timestamp-latency samples for the event.
latency|latest|server|2.8.13|O(1)|Return the latest latency samples for all events.
latency|reset|server|2.8.13|O(1)|Reset latency data for one or more events.
object|encoding|generic|2.2.3|O(1)|Inspect the internal encoding of a Redis object
object|refcount|generic|2.2.3|O(1)|Get the number of references to the value of the key
object|idletime|generic|2.2.3|O(1)|Get the time since a Redis object was last accessed
object|freq|generic|4.0.0|O(1)|Get the logarithmic access frequency counter of a Redis object
object|help|generic|6.2.0|O(1)|Show helpful text about the different subcommands
client|no-touch|connection|7.2.0|O(1)|Controls whether commands sent by the client affect the LRU/LFU of accessed keys.
client|setinfo|connection|7.2.0|O(1)|Sets information specific to the client or connection.
`

const commandDocTable = `
ping|connection|1.0.0|O(1)|fast|@fast @connection||Ping the server
echo|connection|1.0.0|O(1)|fast|@fast @connection||Echo the given string
auth|connection|1.0.0|O(N) where N is the number of passwords defined for the user|noscript loading stale fast allow_busy|@fast @connection||Authenticate to the server
hello|connection|6.0.0|O(1)|noscript loading stale fast allow_busy|@fast @connection||Handshake with Redis
client|connection|2.4.0|Depends on subcommand.|||@slow|A container for client connection commands
quit|connection|1.0.0|O(1)|noscript loading stale fast allow_busy|@fast @connection||Close the connection
reset|connection|6.2.0|O(1)|noscript loading stale fast allow_busy|@fast @connection||Reset the connection
select|connection|1.0.0|O(1)|loading stale fast|@fast @connection||Change the selected database for the current connection
get|string|1.0.0|O(1)|fast|@string @fast|RO access|Get the value of a key
set|string|1.0.0|O(1)|denyoom|@string @slow|RW access update variable_flags|Set the string value of a key
setnx|string|1.0.0|O(1)|denyoom fast|@string @fast|OW insert|Set the value of a key, only if the key does not exist
setex|string|2.0.0|O(1)|denyoom|@string @slow|OW update|Set the value and expiration of a key
psetex|string|2.6.0|O(1)|denyoom|@string @slow|OW update|Set the value and expiration in milliseconds of a key
getex|string|6.2.0|O(1)|fast|@string @fast|RW access update|Get the value of a key and optionally set its expiration
getdel|string|6.2.0|O(1)|fast|@string @fast|RW access delete|Get the value of a key and delete the key
getset|string|1.0.0|O(1)|denyoom fast|@string @fast|RW access update|Set the string value of a key and return its old value
mget|string|1.0.0|O(N) where N is the number of keys to retrieve.|fast|@string @fast|RO access|Get the values of all the given keys
mset|string|1.0.1|O(N) where N is the number of keys to set.|denyoom|@string @slow|OW update|Set multiple keys to multiple values
msetnx|string|1.0.1|O(N) where N is the number of keys to set.|denyoom|@string @slow|OW insert|Set multiple keys to multiple values, only if none of the keys exist
incr|string|1.0.0|O(1)|denyoom fast|@string @fast|RW access update|Increment the integer value of a key by one
decr|string|1.0.0|O(1)|denyoom fast|@string @fast|RW access update|Decrement the integer value of a key by one
incrby|string|1.0.0|O(1)|denyoom fast|@string @fast|RW access update|Increment the integer value of a key by the given amount
decrby|string|1.0.0|O(1)|denyoom fast|@string @fast|RW access update|Decrement the integer value of a key by the given number
incrbyfloat|string|2.6.0|O(1)|denyoom fast|@string @fast|RW access update|Increment the float value of a key by the given amount
append|string|2.0.0|O(1). The amortized time complexity is O(1) assuming the appended value is small and the already present value is of any size, since the dynamic string library used by Redis will double the free space available on every reallocation.|denyoom fast|@string @fast|RW insert|Append a value to a key
strlen|string|2.2.0|O(1)|fast|@string @fast|RO|Get the length of the value stored in a key
getrange|string|2.4.0|O(N) where N is the length of the returned string. The complexity is ultimately determined by the returned length, but because creating a substring from an existing string is very cheap, it can be considered O(1) for small strings.||@string @slow|RO access|Get a substring of the string stored at a key
substr|string|1.0.0|O(N) where N is the length of the returned string. The complexity is ultimately determined by the returned length, but because creating a substring from an existing string is very cheap, it can be considered O(1) for small strings.||@string @slow|RO access|Get a substring of the string stored at a key
setrange|string|2.2.0|O(1), not counting the time taken to copy the new string in place. Usually, this string is very small so the amortized complexity is O(1). Otherwise, complexity is O(M) with M being the length of the value argument.|denyoom|@string @slow|RW update|Overwrite part of a string at key starting at the specified offset
lcs|string|7.0.0|O(N*M) where N and M are the lengths of s1 and s2, respectively||@string @slow|RO access|Find longest common substring
setbit|bitmap|2.2.0|O(1)|denyoom|@bitmap @slow|RW access update|Sets or clears the bit at offset in the string value stored at key
getbit|bitmap|2.2.0|O(1)|fast|@bitmap @fast|RO access|Returns the bit value at offset in the string value stored at key
bitcount|bitmap|2.6.0|O(N)||@bitmap @slow|RO access|Count set bits in a string
bitpos|bitmap|2.8.7|O(N)||@bitmap @slow|RO access|Find first bit set or clear in a string
del|generic|1.0.0|O(N) where N is the number of keys that will be removed. When a key to remove holds a value other than a string, the individual complexity for this key is O(M) where M is the number of elements in the list, set, sorted set or hash. Removing a single key that holds a string value is O(1).||@keyspace @slow|RM delete|Delete a key
unlink|generic|4.0.0|O(1) for each key removed regardless of its size. Then the command does O(N) work in a different thread in order to reclaim memory, where N is the number of allocations the deleted objects where composed of.|fast|@keyspace @fast|RM delete|Delete a key asynchronously in another thread. Otherwise it is just as DEL, but non blocking.
exists|generic|1.0.0|O(N) where N is the number of keys to check.|fast|@keyspace @fast|RO|Determine if a key exists
type|generic|1.0.0|O(1)|fast|@keyspace @fast|RO|Determine the type stored at key
ttl|generic|1.0.0|O(1)|fast|@keyspace @fast|RO access|Get the time to live for a key in seconds
pttl|generic|2.6.0|O(1)|fast|@keyspace @fast|RO access|Get the time to live for a key in milliseconds
expire|generic|1.0.0|O(1)|fast|@keyspace @fast|RW update|Set a key's time to live in seconds
pexpire|generic|2.6.0|O(1)|fast|@keyspace @fast|RW update|Set a key's time to live in milliseconds
expireat|generic|1.2.0|O(1)|fast|@keyspace @fast|RW update|Set the expiration for a key as a UNIX timestamp
pexpireat|generic|2.6.0|O(1)|fast|@keyspace @fast|RW update|Set the expiration for a key as a UNIX timestamp specified in milliseconds
expiretime|generic|7.0.0|O(1)|fast|@keyspace @fast|RO access|Get the expiration Unix timestamp for a key
pexpiretime|generic|7.0.0|O(1)|fast|@keyspace @fast|RO access|Get the expiration Unix timestamp for a key in milliseconds
persist|generic|2.2.0|O(1)|fast|@keyspace @fast|RW update|Remove the expiration from a key
keys|generic|1.0.0|O(N) with N being the number of keys in the database, under the assumption that the key names in the database and the given pattern have limited length.||@keyspace @slow @dangerous||Find all keys matching the given pattern
scan|generic|2.8.0|O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.||@keyspace @slow||Incrementally iterate the keys space
randomkey|generic|1.0.0|O(1)||@keyspace @slow||Return a random key from the keyspace
rename|generic|1.0.0|O(1)||@keyspace @slow|RW access delete|Rename a key
renamenx|generic|1.0.0|O(1)|fast|@keyspace @fast|RW access delete|Rename a key, only if the new key does not exist
copy|generic|6.2.0|O(N) worst case for collections, where N is the number of nested items. O(1) for string values.|denyoom|@keyspace @slow|RO access|Copy a key
touch|generic|3.2.1|O(N) where N is the number of keys that will be touched.|fast|@keyspace @fast|RO|Alters the last access time of a key(s). Returns the number of existing keys specified.
object|generic|2.2.3|Depends on subcommand.|||@slow|A container for object introspection commands
dump|generic|2.6.0|O(1) to access the key and additional O(N*M) to serialize it, where N is the number of Redis objects composing the value and M their average size. For small string values the time complexity is thus O(1)+O(1*M) where M is small, so simply O(1).||@keyspace @slow|RO access|Return a serialized version of the value stored at the specified key.
restore|generic|2.6.0|O(1) to create the new key and additional O(N*M) to reconstruct the serialized value, where N is the number of Redis objects composing the value and M their average size. For small string values the time complexity is thus O(1)+O(1*M) where M is small, so simply O(1). However for sorted set values the complexity is O(N*M*log(N)) because inserting values into sorted sets is O(log(N)).|denyoom|@keyspace @slow @dangerous|OW update|Create a key using the provided serialized value, previously obtained using DUMP.
move|generic|1.0.0|O(1)|fast|@keyspace @fast|RW access delete|Move a key to another database
dbsize|server|1.0.0|O(1)|fast|@keyspace @read @fast||Return the number of keys in the selected database
flushdb|server|1.0.0|O(N) where N is the number of keys in the selected database||@keyspace @slow @dangerous||Remove all keys from the current database
flushall|server|1.0.0|O(N) where N is the total number of keys in all databases||@keyspace @slow @dangerous||Remove all keys from all databases
swapdb|server|4.0.0|O(N) where N is the count of clients watching or blocking on keys from both databases.|fast|@keyspace @fast @dangerous||Swaps two Redis databases
multi|transactions|1.2.0|O(1)|noscript loading stale fast allow_busy|@fast @transaction||Mark the start of a transaction block
exec|transactions|1.2.0|Depends on commands in the transaction|noscript loading stale skip_slowlog|@slow @transaction||Execute all commands issued after MULTI
discard|transactions|2.0.0|O(N), when N is the number of queued commands|noscript loading stale fast allow_busy|@fast @transaction||Discard all commands issued after MULTI
watch|transactions|2.2.0|O(1) for every key.|noscript loading stale fast allow_busy|@fast @transaction||Watch the given keys to determine execution of the MULTI/EXEC block
unwatch|transactions|2.2.0|O(1)|noscript loading stale fast allow_busy|@fast @transaction||Forget about all watched keys
info|server|1.0.0|O(1)|loading stale|@slow @dangerous||Get information and statistics about the server
config|server|2.0.0|Depends on subcommand.|||@slow|A container for server configuration commands
command|server|2.8.13|O(N) where N is the total number of Redis commands|loading stale|@slow @connection||Get array of Redis command details
time|server|2.6.0|O(1)|loading stale fast|@fast||Return the current server time
lastsave|server|1.0.0|O(1)|loading stale fast|@fast @dangerous||Get the UNIX time stamp of the last successful save to disk
save|server|1.0.0|O(N) where N is the total number of keys in all databases|noscript no_async_loading no_multi|@slow @dangerous||Synchronously save the dataset to disk
bgsave|server|1.0.0|O(1)|noscript no_async_loading|@slow @dangerous||Asynchronously save the dataset to disk
shutdown|server|1.0.0|O(N) when saving, where N is the total number of keys in all databases when saving data, otherwise O(1)|noscript loading stale no_multi allow_busy|@slow @dangerous||Synchronously save the dataset to disk and then shut down the server
slowlog|server|2.2.12|Depends on subcommand.|||@slow|A container for slow log commands
latency|server|2.8.13|Depends on subcommand.|||@slow|A container for latency diagnostics commands
monitor|server|1.0.0||noscript loading stale|@slow @dangerous||Listen for all requests received by the server in real time
role|server|2.8.12|O(1)|noscript loading stale fast|@fast @dangerous||Return the role of the instance in the context of replication
wait|generic|3.0.0|O(1)|noscript|@slow @connection||Wait for the synchronous replication of all the write commands sent in the context of the current connection
replicaof|server|5.0.0|O(1)|noscript stale no_async_loading|@slow @dangerous||Make the server a replica of another instance, or promote it as master.
slaveof|server|1.0.0|O(1)|noscript stale no_async_loading|@slow @dangerous||Make the server a replica of another instance, or promote it as master.
sentinel|sentinel|2.8.4|Depends on subcommand.|admin loading stale|@admin @slow @dangerous||A container for Redis Sentinel commands
subscribe|pubsub|2.0.0|O(N) where N is the number of channels to subscribe to.|pubsub noscript loading stale|@pubsub @slow||Listen for messages published to the given channels
unsubscribe|pubsub|2.0.0|O(N) where N is the number of clients already subscribed to a channel.|pubsub noscript loading stale|@pubsub @slow||Stop listening for messages posted to the given channels
`
