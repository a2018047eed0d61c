package ordtree

import (
	"bytes"
	"fmt"
)

// Check verifies the tree's invariants and returns the first violation:
// keys in order and within their parents' bounds, every leaf at the same
// depth, node fill, slots past a node's items cleared, and the counters.
// It walks the whole tree; tests call it.
func (t *Tree[V]) Check() error {
	if t.root == nil {
		if t.length != 0 || t.keyBytes != 0 || t.tailBytes != 0 || t.leaves != 0 || t.inners != 0 {
			return fmt.Errorf("ordtree: empty tree with counters %+v", t.Stats())
		}
		return nil
	}
	var (
		keys              int
		keyBytes, tails   int64
		leaves, inners    int64
		leafDepth         = -1
		err               error
		key, prev, lo, hi []byte
	)
	var walk func(n *Node[V], depth int, lo, hi []byte, edge bool)
	walk = func(n *Node[V], depth int, lo, hi []byte, edge bool) {
		if err != nil {
			return
		}
		// Only the root and a level's last node may hold fewer than
		// MinItems (see split).
		if n.n > MaxItems || (n != t.root && !edge && n.n < MinItems) || n.n < 1 {
			err = fmt.Errorf("ordtree: node with %d items", n.n)
			return
		}
		if n.cow() > t.cow {
			err = fmt.Errorf("ordtree: node version %d past the tree's %d", n.cow(), t.cow)
			return
		}
		prev = nil
		for i := 0; i < n.n; i++ {
			key = n.appendKey(key[:0], i)
			if prev != nil && bytes.Compare(prev, key) >= 0 {
				err = fmt.Errorf("ordtree: keys %q, %q out of order", prev, key)
				return
			}
			if (lo != nil && bytes.Compare(key, lo) <= 0) || (hi != nil && bytes.Compare(key, hi) >= 0) {
				err = fmt.Errorf("ordtree: key %q outside its parent's bounds (%q, %q)", key, lo, hi)
				return
			}
			klen := n.klens[i] & lenMask
			if n.tag&tagKeyInVal != t.flags {
				err = fmt.Errorf("ordtree: node flags %#x in a tree with %#x", n.tag&tagKeyInVal, t.flags)
				return
			}
			if long := n.tails != nil && n.tails.long != nil && n.tails.long[i] != nil; (klen > wideLen && t.flags == 0) != long {
				err = fmt.Errorf("ordtree: key %q of length %d and tail %v", key, klen, long)
				return
			}
			if klen > PrefixLen+1 && t.flags == 0 && n.tails == nil {
				err = fmt.Errorf("ordtree: key %q of length %d in a node without tails", key, klen)
				return
			}
			if n.tails != nil && klen > wideLen && n.tails.w[i] != tailWord(string(key[PrefixLen:])) {
				err = fmt.Errorf("ordtree: key %q has tail word %#x", key, n.tails.w[i])
				return
			}
			if n.tails != nil && klen <= PrefixLen+1 && n.tails.w[i] != 0 {
				err = fmt.Errorf("ordtree: key %q of length %d has tail word %#x", key, klen, n.tails.w[i])
				return
			}
			prev = append(prev[:0:0], key...)
			if hint := byte(n.klens[i] >> hintShift); klen > PrefixLen && hint != key[PrefixLen] || klen <= PrefixLen && hint != 0 {
				err = fmt.Errorf("ordtree: key %q has tail hint %#x", key, hint)
			}
			keyBytes += int64(klen)
			tails += t.tailLen(klen)
		}
		for i := n.n; i < MaxItems; i++ {
			if n.tails != nil && (n.tails.w[i] != 0 || n.tails.long != nil && n.tails.long[i] != nil) {
				err = fmt.Errorf("ordtree: tail past a node's items not cleared")
				return
			}
		}
		keys += n.n
		if n.leaf() {
			leaves++
			if leafDepth < 0 {
				leafDepth = depth
			} else if leafDepth != depth {
				err = fmt.Errorf("ordtree: leaves at depths %d and %d", leafDepth, depth)
			}
			return
		}
		inners++
		for i := 0; i <= n.n; i++ {
			clo, chi := lo, hi
			if i > 0 {
				clo = n.appendKey(nil, i-1)
			}
			if i < n.n {
				chi = n.appendKey(nil, i)
			}
			c := n.kids()[i]
			if c == nil {
				err = fmt.Errorf("ordtree: missing child %d of %d", i, n.n+1)
				return
			}
			walk(c, depth+1, clo, chi, edge && i == n.n)
		}
		for i := n.n + 1; i <= MaxItems; i++ {
			if n.kids()[i] != nil {
				err = fmt.Errorf("ordtree: child slot past n+1 not cleared")
				return
			}
		}
	}
	walk(t.root, 1, lo, hi, true)
	if err != nil {
		return err
	}
	got := Stats{Keys: keys, KeyBytes: keyBytes, TailBytes: tails, Leaves: leaves, Inners: inners}
	want := t.Stats()
	want.Copies, want.Splits, want.Merges = 0, 0, 0
	if got != want {
		return fmt.Errorf("ordtree: counted %+v, the tree says %+v", got, want)
	}
	if h := t.Height(); h != leafDepth {
		return fmt.Errorf("ordtree: height %d, leaves at depth %d", h, leafDepth)
	}
	return nil
}
