package node

import (
	"fmt"
	"slices"
	"strings"
)

// COMMAND DOCS' `arguments`: each command's arguments in Redis 7's shape,
// written in a compact notation (commandArgTable) that init parses once.
//
// An argument is written
//
//	name:type[#keyspec][=TOKEN][@since][~deprecated][flags][(arguments)]
//
// where type is Redis' (key, string, integer, double, pattern, unix-time,
// pure-token, oneof, block), #keyspec the key's key_spec_index, =TOKEN the
// word that introduces it, @since the version that added it, ~deprecated
// the version that deprecated it, flags any of ? (optional), * (multiple)
// and + (multiple_token), and a oneof or block holds its arguments in
// parentheses. A name may hold a colon (CLIENT KILL's "ip:port"): the type
// starts after the last colon that a type name follows. The reply gives the
// fields in Redis' order: name, type, key_spec_index, token, since,
// deprecated_since, flags, arguments. The
// differential test compares the result with redis-server's for every
// command listed.

// cmdArg is one argument of a command.
type cmdArg struct {
	name, typ, token, since, deprecated string
	keySpec                             int // -1: not a key
	flags                               []string
	args                                []cmdArg
}

// commandArgs are the arguments of the commands commandArgTable lists.
var commandArgs = map[string][]cmdArg{}

func init() {
	for _, line := range strings.Split(strings.TrimSpace(commandArgTable), "\n") {
		name, spec, _ := strings.Cut(line, " ")
		args, rest, err := parseCmdArgs(tokenizeCmdArgs(spec))
		if err != nil || len(rest) != 0 {
			panic(fmt.Sprintf("node: bad argument line %q: %v", line, err))
		}
		commandArgs[name] = args
	}
}

// tokenizeCmdArgs splits the notation into arguments and parentheses.
func tokenizeCmdArgs(s string) []string {
	s = strings.NewReplacer("(", " ( ", ")", " ) ").Replace(s)
	return strings.Fields(s)
}

// parseCmdArgs parses arguments up to a closing parenthesis or the end.
func parseCmdArgs(toks []string) ([]cmdArg, []string, error) {
	var out []cmdArg
	for len(toks) > 0 && toks[0] != ")" {
		a, err := parseCmdArg(toks[0])
		if err != nil {
			return nil, nil, err
		}
		toks = toks[1:]
		if len(toks) > 0 && toks[0] == "(" {
			var err error
			if a.args, toks, err = parseCmdArgs(toks[1:]); err != nil {
				return nil, nil, err
			}
			if len(toks) == 0 || toks[0] != ")" {
				return nil, nil, fmt.Errorf("%s: no closing parenthesis", a.name)
			}
			toks = toks[1:]
		}
		out = append(out, a)
	}
	return out, toks, nil
}

// argTypes are the argument types of Redis 7.0's COMMAND DOCS.
var argTypes = []string{"key", "string", "integer", "double", "pattern", "unix-time", "pure-token", "oneof", "block"}

// parseCmdArg parses one name:type[#keyspec][=TOKEN][@since][~deprecated][flags].
func parseCmdArg(s string) (cmdArg, error) {
	a := cmdArg{keySpec: -1}
	colon := -1
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == ':' && slices.ContainsFunc(argTypes, func(t string) bool { return strings.HasPrefix(s[i+1:], t) }) {
			colon = i
			break
		}
	}
	if colon < 0 {
		return a, fmt.Errorf("%q has no type", s)
	}
	a.name, s = s[:colon], s[colon+1:]
	rest := s
	for len(rest) > 0 && strings.ContainsRune("?*+", rune(rest[len(rest)-1])) {
		switch rest[len(rest)-1] {
		case '?':
			a.flags = append([]string{"optional"}, a.flags...)
		case '*':
			a.flags = append([]string{"multiple"}, a.flags...)
		case '+':
			a.flags = append([]string{"multiple_token"}, a.flags...)
		}
		rest = rest[:len(rest)-1]
	}
	rest, a.deprecated, _ = strings.Cut(rest, "~")
	rest, a.since, _ = strings.Cut(rest, "@")
	rest, a.token, _ = strings.Cut(rest, "=")
	typ, ks, hasKS := strings.Cut(rest, "#")
	a.typ = typ
	if hasKS {
		if _, err := fmt.Sscanf(ks, "%d", &a.keySpec); err != nil {
			return a, fmt.Errorf("%q: bad key spec index", s)
		}
	}
	return a, nil
}

// writeCmdArgs writes args as COMMAND DOCS' arguments array.
func writeCmdArgs(c *client, args []cmdArg) {
	c.conn.WriteArray(len(args))
	for i := range args {
		a := &args[i]
		fields := 2
		for _, set := range []bool{a.keySpec >= 0, a.token != "", a.since != "", a.deprecated != "", len(a.flags) > 0, len(a.args) > 0} {
			if set {
				fields++
			}
		}
		c.conn.WriteMap(fields)
		c.conn.WriteBulkString("name")
		c.conn.WriteBulkString(a.name)
		c.conn.WriteBulkString("type")
		c.conn.WriteBulkString(a.typ)
		if a.keySpec >= 0 {
			c.conn.WriteBulkString("key_spec_index")
			c.conn.WriteInt(a.keySpec)
		}
		if a.token != "" {
			c.conn.WriteBulkString("token")
			c.conn.WriteBulkString(a.token)
		}
		if a.since != "" {
			c.conn.WriteBulkString("since")
			c.conn.WriteBulkString(a.since)
		}
		if a.deprecated != "" {
			c.conn.WriteBulkString("deprecated_since")
			c.conn.WriteBulkString(a.deprecated)
		}
		if len(a.flags) > 0 {
			c.conn.WriteBulkString("flags")
			c.conn.WriteSet(len(a.flags)) // a set in RESP3, as Redis
			for _, f := range a.flags {
				c.conn.WriteString(f) // a simple string, as Redis writes flags
			}
		}
		if len(a.args) > 0 {
			c.conn.WriteBulkString("arguments")
			writeCmdArgs(c, a.args)
		}
	}
}

// commandArgTable: one command a line, its arguments in the notation
// above. The commands with no arguments have none listed (Redis leaves
// the field out for them too).
const commandArgTable = `
ping message:string?
echo message:string
select index:integer
get key:key#0
set key:key#0 value:string condition:oneof@2.6.12?(nx:pure-token=NX xx:pure-token=XX) get:pure-token=GET@6.2.0? expiration:oneof?(seconds:integer=EX@2.6.12 milliseconds:integer=PX@2.6.12 unix-time-seconds:unix-time=EXAT@6.2.0 unix-time-milliseconds:unix-time=PXAT@6.2.0 keepttl:pure-token=KEEPTTL@6.0.0)
setnx key:key#0 value:string
setex key:key#0 seconds:integer value:string
psetex key:key#0 milliseconds:integer value:string
getex key:key#0 expiration:oneof?(seconds:integer=EX milliseconds:integer=PX unix-time-seconds:unix-time=EXAT unix-time-milliseconds:unix-time=PXAT persist:pure-token=PERSIST)
getdel key:key#0
getset key:key#0 value:string
mget key:key#0*
mset key_value:block*(key:key#0 value:string)
msetnx key_value:block*(key:key#0 value:string)
incr key:key#0
decr key:key#0
incrby key:key#0 increment:integer
decrby key:key#0 decrement:integer
incrbyfloat key:key#0 increment:double
append key:key#0 value:string
strlen key:key#0
getrange key:key#0 start:integer end:integer
substr key:key#0 start:integer end:integer
setrange key:key#0 offset:integer value:string
lcs key1:key#0 key2:key#0 len:pure-token=LEN? idx:pure-token=IDX? len:integer=MINMATCHLEN? withmatchlen:pure-token=WITHMATCHLEN?
setbit key:key#0 offset:integer value:integer
getbit key:key#0 offset:integer
bitcount key:key#0 index:block?(start:integer end:integer index_unit:oneof@7.0.0?(byte:pure-token=BYTE bit:pure-token=BIT))
bitpos key:key#0 bit:integer index:block?(start:integer end_index:block?(end:integer index_unit:oneof@7.0.0?(byte:pure-token=BYTE bit:pure-token=BIT)))
del key:key#0*
unlink key:key#0*
exists key:key#0*
touch key:key#0*
type key:key#0
ttl key:key#0
pttl key:key#0
expiretime key:key#0
pexpiretime key:key#0
persist key:key#0
expire key:key#0 seconds:integer condition:oneof@7.0.0?(nx:pure-token=NX xx:pure-token=XX gt:pure-token=GT lt:pure-token=LT)
pexpire key:key#0 milliseconds:integer condition:oneof@7.0.0?(nx:pure-token=NX xx:pure-token=XX gt:pure-token=GT lt:pure-token=LT)
expireat key:key#0 unix-time-seconds:unix-time condition:oneof@7.0.0?(nx:pure-token=NX xx:pure-token=XX gt:pure-token=GT lt:pure-token=LT)
pexpireat key:key#0 unix-time-milliseconds:unix-time condition:oneof@7.0.0?(nx:pure-token=NX xx:pure-token=XX gt:pure-token=GT lt:pure-token=LT)
keys pattern:pattern
scan cursor:integer pattern:pattern=MATCH? count:integer=COUNT? type:string=TYPE@6.0.0?
rename key:key#0 newkey:key#1
renamenx key:key#0 newkey:key#1
copy source:key#0 destination:key#1 destination-db:integer=DB? replace:pure-token=REPLACE?
move key:key#0 db:integer
dump key:key#0
restore key:key#0 ttl:integer serialized-value:string replace:pure-token=REPLACE@3.0.0? absttl:pure-token=ABSTTL@5.0.0? seconds:integer=IDLETIME@5.0.0? frequency:integer=FREQ@5.0.0?
watch key:key#0*
wait numreplicas:integer timeout:integer
auth username:string@6.0.0? password:string
hello arguments:block?(protover:integer username_password:block=AUTH?(username:string password:string) clientname:string=SETNAME?)
flushdb async:oneof?(async:pure-token=ASYNC@4.0.0 sync:pure-token=SYNC@6.2.0)
flushall async:oneof?(async:pure-token=ASYNC@4.0.0 sync:pure-token=SYNC@6.2.0)
info section:string?*
bgsave schedule:pure-token=SCHEDULE@3.2.2?
shutdown nosave_save:oneof?(nosave:pure-token=NOSAVE save:pure-token=SAVE) now:pure-token=NOW@7.0.0? force:pure-token=FORCE@7.0.0? abort:pure-token=ABORT@7.0.0?
replicaof args:oneof(host-port:block(host:string port:integer) no-one:block(no:pure-token=NO one:pure-token=ONE))
slaveof args:oneof(host-port:block(host:string port:integer) no-one:block(no:pure-token=NO one:pure-token=ONE))
subscribe channel:string*
unsubscribe channel:string?*
client|caching mode:oneof(yes:pure-token=YES no:pure-token=NO)
client|kill filter:oneof(ip:port:string~2.8.12 new-format:oneof*(client-id:integer=ID@2.8.12? normal_master_slave_pubsub:oneof=TYPE@2.8.12?(normal:pure-token=NORMAL master:pure-token=MASTER@3.2.0 slave:pure-token=SLAVE replica:pure-token=REPLICA@5.0.0 pubsub:pure-token=PUBSUB) username:string=USER? ip:port:string=ADDR? ip:port:string=LADDR@6.2.0? yes/no:string=SKIPME?))
client|list normal_master_replica_pubsub:oneof=TYPE@5.0.0?(normal:pure-token=NORMAL master:pure-token=MASTER replica:pure-token=REPLICA pubsub:pure-token=PUBSUB) id:block=ID@6.2.0?(client-id:integer*)
client|no-evict enabled:oneof(on:pure-token=ON off:pure-token=OFF)
client|pause timeout:integer mode:oneof@6.2.0?(write:pure-token=WRITE all:pure-token=ALL)
client|reply on_off_skip:oneof(on:pure-token=ON off:pure-token=OFF skip:pure-token=SKIP)
client|setname connection-name:string
client|tracking status:oneof(on:pure-token=ON off:pure-token=OFF) client-id:integer=REDIRECT? prefix:string=PREFIX?*+ bcast:pure-token=BCAST? optin:pure-token=OPTIN? optout:pure-token=OPTOUT? noloop:pure-token=NOLOOP?
client|unblock client-id:integer timeout_error:oneof?(timeout:pure-token=TIMEOUT error:pure-token=ERROR)
config|get parameter:block*(parameter:string)
config|set parameter_value:block*(parameter:string value:string)
command|docs command-name:string?*
command|info command-name:string?*
command|list filterby:oneof=FILTERBY?(module-name:string=MODULE category:string=ACLCAT pattern:pattern=PATTERN)
slowlog|get count:integer?
latency|graph event:string
latency|histogram command:string?*
latency|history event:string
latency|reset event:string?*
object|encoding key:key#0
object|refcount key:key#0
object|idletime key:key#0
object|freq key:key#0
client|no-touch enabled:oneof(on:pure-token=ON off:pure-token=OFF)
client|setinfo attr:oneof(libname:string=lib-name libver:string=lib-ver)
`

// docExtras are the fields of COMMAND DOCS a command has besides summary,
// since, group, complexity and arguments: doc_flags (a set of simple
// strings), deprecated_since, replaced_by and history (a set of [version,
// change] pairs), written in that order after complexity, as Redis 7 does.
type docExtras struct {
	flags           []string
	deprecatedSince string
	replacedBy      string
	history         [][2]string
}

// pairs is how many map entries e adds to a COMMAND DOCS reply.
func (e *docExtras) pairs() int {
	n := 0
	for _, set := range []bool{len(e.flags) > 0, e.deprecatedSince != "", e.replacedBy != "", len(e.history) > 0} {
		if set {
			n++
		}
	}
	return n
}

// write writes e's entries of a COMMAND DOCS map.
func (e *docExtras) write(c *client) {
	if len(e.flags) > 0 {
		c.conn.WriteBulkString("doc_flags")
		c.conn.WriteSet(len(e.flags))
		for _, f := range e.flags {
			c.conn.WriteString(f)
		}
	}
	if e.deprecatedSince != "" {
		c.conn.WriteBulkString("deprecated_since")
		c.conn.WriteBulkString(e.deprecatedSince)
	}
	if e.replacedBy != "" {
		c.conn.WriteBulkString("replaced_by")
		c.conn.WriteBulkString(e.replacedBy)
	}
	if len(e.history) > 0 {
		c.conn.WriteBulkString("history")
		c.conn.WriteSet(len(e.history))
		for _, h := range e.history {
			c.conn.WriteArray(2)
			c.conn.WriteBulkString(h[0])
			c.conn.WriteBulkString(h[1])
		}
	}
}

// commandDocExtras: the commands commandDocTable lists that have any of
// docExtras' fields in redis-server 7.0.15's COMMAND DOCS (the texts are
// Redis' own, as the summaries are; TestCommandDocsWhole compares).
var commandDocExtras = map[string]docExtras{
	"auth":      {history: [][2]string{{"6.0.0", "Added ACL style (username and password)."}}},
	"hello":     {history: [][2]string{{"6.2.0", "`protover` made optional; when called without arguments the command reports the current connection's context."}}},
	"set":       {history: [][2]string{{"2.6.12", "Added the `EX`, `PX`, `NX` and `XX` options."}, {"6.0.0", "Added the `KEEPTTL` option."}, {"6.2.0", "Added the `GET`, `EXAT` and `PXAT` option."}, {"7.0.0", "Allowed the `NX` and `GET` options to be used together."}}},
	"getset":    {flags: []string{"deprecated"}, deprecatedSince: "6.2.0", replacedBy: "`SET` with the `!GET` argument"},
	"substr":    {flags: []string{"deprecated"}, deprecatedSince: "2.0.0", replacedBy: "`GETRANGE`"},
	"bitcount":  {history: [][2]string{{"7.0.0", "Added the `BYTE|BIT` option."}}},
	"bitpos":    {history: [][2]string{{"7.0.0", "Added the `BYTE|BIT` option."}}},
	"exists":    {history: [][2]string{{"3.0.3", "Accepts multiple `key` arguments."}}},
	"ttl":       {history: [][2]string{{"2.8.0", "Added the -2 reply."}}},
	"pttl":      {history: [][2]string{{"2.8.0", "Added the -2 reply."}}},
	"expire":    {history: [][2]string{{"7.0.0", "Added options: `NX`, `XX`, `GT` and `LT`."}}},
	"pexpire":   {history: [][2]string{{"7.0.0", "Added options: `NX`, `XX`, `GT` and `LT`."}}},
	"expireat":  {history: [][2]string{{"7.0.0", "Added options: `NX`, `XX`, `GT` and `LT`."}}},
	"pexpireat": {history: [][2]string{{"7.0.0", "Added options: `NX`, `XX`, `GT` and `LT`."}}},
	"scan":      {history: [][2]string{{"6.0.0", "Added the `TYPE` subcommand."}}},
	"renamenx":  {history: [][2]string{{"3.2.0", "The command no longer returns an error when source and destination names are the same."}}},
	"restore":   {history: [][2]string{{"3.0.0", "Added the `REPLACE` modifier."}, {"5.0.0", "Added the `ABSTTL` modifier."}, {"5.0.0", "Added the `IDLETIME` and `FREQ` options."}}},
	"flushdb":   {history: [][2]string{{"4.0.0", "Added the `ASYNC` flushing mode modifier."}, {"6.2.0", "Added the `SYNC` flushing mode modifier."}}},
	"flushall":  {history: [][2]string{{"4.0.0", "Added the `ASYNC` flushing mode modifier."}, {"6.2.0", "Added the `SYNC` flushing mode modifier."}}},
	"info":      {history: [][2]string{{"7.0.0", "Added support for taking multiple section arguments."}}},
	"bgsave":    {history: [][2]string{{"3.2.2", "Added the `SCHEDULE` option."}}},
	"shutdown":  {history: [][2]string{{"7.0.0", "Added the `NOW`, `FORCE` and `ABORT` modifiers."}}},
	"slaveof":   {flags: []string{"deprecated"}, deprecatedSince: "5.0.0", replacedBy: "`REPLICAOF`"},
	// Subcommands, under their full names.
	"client|kill":  {history: [][2]string{{"2.8.12", "Added new filter format."}, {"2.8.12", "`ID` option."}, {"3.2.0", "Added `master` type in for `TYPE` option."}, {"5.0.0", "Replaced `slave` `TYPE` with `replica`. `slave` still supported for backward compatibility."}, {"6.2.0", "`LADDR` option."}}},
	"client|list":  {history: [][2]string{{"2.8.12", "Added unique client `id` field."}, {"5.0.0", "Added optional `TYPE` filter."}, {"6.0.0", "Added `user` field."}, {"6.2.0", "Added `argv-mem`, `tot-mem`, `laddr` and `redir` fields and the optional `ID` filter."}, {"7.0.0", "Added `resp`, `multi-mem`, `rbs` and `rbp` fields."}, {"7.0.3", "Added `ssub` field."}}},
	"client|pause": {history: [][2]string{{"6.2.0", "`CLIENT PAUSE WRITE` mode added along with the `mode` option."}}},
	"config|get":   {history: [][2]string{{"7.0.0", "Added the ability to pass multiple pattern parameters in one call"}}},
	"config|set":   {history: [][2]string{{"7.0.0", "Added the ability to set multiple parameters in one call."}}},
	"command|info": {history: [][2]string{{"7.0.0", "Allowed to be called with no argument to get info on all commands."}}},
	"slowlog|get":  {history: [][2]string{{"4.0.0", "Added client IP address, port and name to the reply."}}},
}
