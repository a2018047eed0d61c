package node

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// CONFIG REWRITE writes what CONFIG SET changed into the YAML file the node
// was started from (-config FILE), as Redis rewrites redis.conf:
//
//   - Only the parameters CONFIG SET changed since the node started are
//     written, at their config keys (timeout, limits.max_connections,
//     client_output_buffer_limit.normal.hard, ...). The rest of the file
//     stays as it is: its keys, its comments (yaml.v3's Node keeps them),
//     its order. What flags and KVNODE_PASSWORD laid over the file is not
//     written: they still override it at the next start.
//   - The new file must parse and validate as a config before it replaces
//     the old one, and it replaces it atomically: written to a temporary
//     file beside it, fsynced, renamed over it, the directory fsynced. A
//     crash leaves the old file or the new one, never a torn one. The file
//     is left with mode 0600: it may hold a password.
//   - requirepass is written where the node's password lives: into
//     password_file when the node reads it from one (its first line,
//     replaced the same atomic way), else as password. An empty
//     requirepass removes both keys.
//
// yaml.v3 re-indents what it writes (two spaces) and may move a comment to
// a neighbouring line; the keys, values and comments survive.

// errNoConfigFile is Redis' reply to CONFIG REWRITE without a config file.
const errNoConfigFile = "ERR The server is running without a config file"

// configRewrite rewrites the node's config file with what CONFIG SET
// changed. Its errors are replies.
func (n *Node) configRewrite() error {
	path := n.cfg.file
	if path == "" {
		return errors.New(errNoConfigFile)
	}
	s := n.state()
	s.configMu.Lock()
	defer s.configMu.Unlock()
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("ERR Rewriting config file: %v", err)
	}
	doc, err := parseYAMLDoc(data)
	if err != nil {
		return fmt.Errorf("ERR Rewriting config file: %s does not parse as YAML any more (%v); fix it by hand", path, err)
	}
	for i := range configParams {
		if s.configChanged&(1<<i) != 0 {
			if err := configParams[i].rewrite(n, doc); err != nil {
				return fmt.Errorf("ERR Rewriting config file: %v", err)
			}
		}
	}
	out, err := doc.encode()
	if err != nil {
		return fmt.Errorf("ERR Rewriting config file: %v", err)
	}
	if _, err := ParseConfig(out); err != nil {
		// A rewrite must never leave a file the node cannot start from.
		return fmt.Errorf("ERR Rewriting config file: the rewritten file would not be a valid config (%v); %s is unchanged", oneLine(err), path)
	}
	if err := writeFileAtomic(path, out); err != nil {
		return fmt.Errorf("ERR Rewriting config file: %v", err)
	}
	n.log.Info("config file rewritten", "file", path)
	return nil
}

// oneLine joins a multi-line error for a reply, which may not hold a
// newline.
func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

// rewritePassword writes requirepass where the node keeps its password.
func rewritePassword(n *Node, doc *yamlDoc) error {
	var pass []byte
	if u := n.settings().users["default"]; u != nil {
		pass = u.pass
	}
	if len(pass) == 0 {
		doc.remove("password")
		doc.remove("password_file")
		return nil
	}
	if f := n.cfg.PasswordFile; f != "" {
		if bytes.ContainsAny(pass, "\r\n") {
			return fmt.Errorf("the password holds a line break, and password_file %s keeps only its first line; CONFIG SET requirepass without one", f)
		}
		return writeFileAtomic(f, append(bytes.Clone(pass), '\n'))
	}
	doc.remove("password_file")
	return doc.set("password", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: string(pass)})
}

// rewriteOutputLimits writes client_output_buffer_limit's three classes.
func rewriteOutputLimits(n *Node, doc *yamlDoc) error {
	o := n.settings().out
	for _, cl := range []struct {
		name string
		l    OutputBufferLimit
	}{{"normal", o.Normal}, {"replica", o.Replica}, {"pubsub", o.Pubsub}} {
		base := "client_output_buffer_limit." + cl.name + "."
		for _, f := range []struct {
			k string
			v int64
		}{{"hard", cl.l.Hard}, {"soft", cl.l.Soft}, {"soft_seconds", int64(cl.l.SoftSeconds)}} {
			if err := doc.setInt(base+f.k, f.v); err != nil {
				return err
			}
		}
	}
	return nil
}

// yamlDoc is a config file as yaml.v3's node tree, which keeps comments and
// key order, with edits by dotted key path.
type yamlDoc struct {
	doc *yaml.Node // a DocumentNode holding one MappingNode
}

// parseYAMLDoc parses data; an empty file is an empty mapping.
func parseYAMLDoc(data []byte) (*yamlDoc, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if doc.Kind == 0 {
		doc = yaml.Node{Kind: yaml.DocumentNode}
	}
	if len(doc.Content) == 0 {
		doc.Content = []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}
	}
	if doc.Kind != yaml.DocumentNode || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("the file is not a mapping of keys")
	}
	return &yamlDoc{doc: &doc}, nil
}

// encode writes the tree back as YAML.
func (d *yamlDoc) encode() ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(d.doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// find returns the value node at key (dotted) and the mapping holding it,
// creating the mappings on the way (not the value) when create is set.
func (d *yamlDoc) find(key string, create bool) (value, parent *yaml.Node, err error) {
	m := d.doc.Content[0]
	parts := strings.Split(key, ".")
	for i, part := range parts {
		var v *yaml.Node
		for j := 0; j+1 < len(m.Content); j += 2 {
			if m.Content[j].Value == part {
				v = m.Content[j+1]
			}
		}
		if i == len(parts)-1 {
			return v, m, nil
		}
		if v == nil || (v.Kind == yaml.ScalarNode && v.Tag == "!!null") {
			if !create {
				return nil, nil, nil
			}
			if v == nil {
				v = &yaml.Node{}
				m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: part}, v)
			}
			v.Kind, v.Tag, v.Value, v.Style, v.Content = yaml.MappingNode, "!!map", "", 0, nil
		}
		if v.Kind != yaml.MappingNode {
			return nil, nil, fmt.Errorf("%s in the config file is not a mapping; fix it by hand", strings.Join(parts[:i+1], "."))
		}
		m = v
	}
	panic("unreachable")
}

// set sets key (dotted) to value, keeping the comments of the node it
// replaces.
func (d *yamlDoc) set(key string, value *yaml.Node) error {
	old, parent, err := d.find(key, true)
	if err != nil {
		return err
	}
	if old == nil {
		name := key[strings.LastIndexByte(key, '.')+1:]
		parent.Content = append(parent.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: name}, value)
		return nil
	}
	value.HeadComment, value.LineComment, value.FootComment = old.HeadComment, old.LineComment, old.FootComment
	*old = *value
	return nil
}

// setInt sets key to the integer v.
func (d *yamlDoc) setInt(key string, v int64) error {
	return d.set(key, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(v, 10)})
}

// remove deletes key (dotted) if it is there.
func (d *yamlDoc) remove(key string) {
	_, parent, _ := d.find(key, false)
	if parent == nil {
		return
	}
	name := key[strings.LastIndexByte(key, '.')+1:]
	for j := 0; j+1 < len(parent.Content); j += 2 {
		if parent.Content[j].Value == name {
			parent.Content = append(parent.Content[:j], parent.Content[j+2:]...)
			return
		}
	}
}

// writeFileAtomic replaces path with data, mode 0600: a temporary file in
// the same directory is written, fsynced and renamed over path, then the
// directory is fsynced, so a crash leaves the old file or the new one.
func writeFileAtomic(path string, data []byte) (err error) {
	var rnd [8]byte
	rand.Read(rnd[:])
	dir := filepath.Dir(path)
	tmp := filepath.Join(dir, "."+filepath.Base(path)+".tmp-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
