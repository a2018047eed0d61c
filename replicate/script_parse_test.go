package replicate

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
)

// A script file (see script_test.go) is a sequence of commands:
//
//	# comments and blank lines between commands are skipped
//	NAME ARG ARG ...
//	----
//	expected output, one or more lines, up to a blank line or the end
//
// An ARG is key or key=value (the value runs to the next space; a value
// may itself hold '='). Expected outputs never hold a blank line, so the
// blank line ends them without an escape.
type command struct {
	line     int    // of the command, 1-based, for messages
	comments string // the comment lines before it, kept by -rewrite
	text     string // the command line as written
	name     string
	args     []arg
	want     string
}

type arg struct {
	key, val string
	hasVal   bool
}

func (a arg) String() string {
	if a.hasVal {
		return a.key + "=" + a.val
	}
	return a.key
}

// arg returns the value of key, and whether the command has it.
func (c *command) arg(key string) (string, bool) {
	for _, a := range c.args {
		if a.key == key {
			return a.val, true
		}
	}
	return "", false
}

func parseScript(file, data string) ([]command, error) {
	lines := strings.Split(data, "\n")
	var cmds []command
	var comments strings.Builder
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if l == "" {
			continue
		}
		if strings.HasPrefix(l, "#") {
			comments.WriteString(l + "\n")
			continue
		}
		if l == "----" {
			return nil, fmt.Errorf("%s:%d: ---- without a command", file, i+1)
		}
		fields := strings.Fields(l)
		c := command{line: i + 1, comments: comments.String(), text: l, name: fields[0]}
		comments.Reset()
		for _, f := range fields[1:] {
			k, v, ok := strings.Cut(f, "=")
			c.args = append(c.args, arg{key: k, val: v, hasVal: ok})
		}
		if i+1 >= len(lines) || strings.TrimSpace(lines[i+1]) != "----" {
			return nil, fmt.Errorf("%s:%d: %s: the command needs a ---- line and its expected output after it", file, i+1, c.name)
		}
		i += 2
		var out []string
		for ; i < len(lines) && strings.TrimSpace(lines[i]) != ""; i++ {
			out = append(out, lines[i])
		}
		c.want = strings.Join(out, "\n")
		cmds = append(cmds, c)
	}
	return cmds, nil
}

// formatScript writes cmds back in the format parseScript reads, each with
// its comments and its (rewritten) output; blank lines are normalised to
// one between commands.
func formatScript(cmds []command) string {
	var b strings.Builder
	for i, c := range cmds {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(c.comments)
		fmt.Fprintf(&b, "%s\n----\n%s\n", c.text, c.want)
	}
	return b.String()
}

// event is a log line a node wrote: its message and attributes.
type event struct {
	msg   string
	attrs map[string]string
}

// eventRecorder keeps every node's log lines, so scripts can assert on what
// a node did (cut its tail, loaded a resync) without an export for it.
type eventRecorder struct {
	mu     sync.Mutex
	events map[string][]event
}

// logger returns node's logger: it records into r and also writes to next.
func (r *eventRecorder) logger(node string, next *slog.Logger) *slog.Logger {
	return slog.New(recordHandler{r: r, node: node, next: next.Handler()})
}

// find returns node's events with message msg, oldest first.
func (r *eventRecorder) find(node, msg string) []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []event
	for _, e := range r.events[node] {
		if e.msg == msg {
			out = append(out, e)
		}
	}
	return out
}

type recordHandler struct {
	r     *eventRecorder
	node  string
	attrs []slog.Attr
	next  slog.Handler
}

func (h recordHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h recordHandler) Handle(ctx context.Context, rec slog.Record) error {
	e := event{msg: rec.Message, attrs: map[string]string{}}
	for _, a := range h.attrs {
		e.attrs[a.Key] = a.Value.String()
	}
	rec.Attrs(func(a slog.Attr) bool {
		e.attrs[a.Key] = a.Value.String()
		return true
	})
	h.r.mu.Lock()
	if h.r.events == nil {
		h.r.events = map[string][]event{}
	}
	h.r.events[h.node] = append(h.r.events[h.node], e)
	h.r.mu.Unlock()
	if h.next.Enabled(ctx, rec.Level) {
		return h.next.Handle(ctx, rec)
	}
	return nil
}

func (h recordHandler) WithAttrs(as []slog.Attr) slog.Handler {
	h.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	h.next = h.next.WithAttrs(as)
	return h
}

// WithGroup is not used by this package's logging; the group is dropped
// from the recorded keys and kept for the next handler.
func (h recordHandler) WithGroup(name string) slog.Handler {
	h.next = h.next.WithGroup(name)
	return h
}
