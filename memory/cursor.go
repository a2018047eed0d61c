package memory

// frame is one level of a cursor's path. In the top frame, i is the index of
// the current item; in the frames below it, i is the index of the child the
// path descends into.
type frame struct {
	n *node
	i int
}

// cursor walks the items of an immutable tree in order, keeping the path from
// the root to its position, so that a step is O(1) amortized and allocates
// nothing. It is not positioned when the path is empty.
type cursor struct {
	root  *node
	stack []frame
	buf   [8]frame // the stack's first backing array: a height-8 tree holds billions of keys
}

func (c *cursor) init(root *node) {
	c.root = root
	c.stack = c.buf[:0]
}

func (c *cursor) valid() bool { return len(c.stack) > 0 }

func (c *cursor) reset() { c.stack = c.stack[:0] }

// item returns the current item. Only call it when valid.
func (c *cursor) item() *item {
	f := &c.stack[len(c.stack)-1]
	return &f.n.items[f.i]
}

func (c *cursor) push(n *node, i int) { c.stack = append(c.stack, frame{n, i}) }

// downFirst descends from n to the smallest item of its subtree.
func (c *cursor) downFirst(n *node) bool {
	for n.children != nil {
		c.push(n, 0)
		n = n.children[0]
	}
	if n.n == 0 {
		return false // only an empty root leaf; the tree never keeps one
	}
	c.push(n, 0)
	return true
}

// downLast descends from n to the largest item of its subtree.
func (c *cursor) downLast(n *node) bool {
	for n.children != nil {
		c.push(n, n.n)
		n = n.children[n.n]
	}
	if n.n == 0 {
		return false
	}
	c.push(n, n.n-1)
	return true
}

func (c *cursor) first() bool {
	c.reset()
	if c.root == nil {
		return false
	}
	return c.downFirst(c.root)
}

func (c *cursor) last() bool {
	c.reset()
	if c.root == nil {
		return false
	}
	return c.downLast(c.root)
}

// upNext pops levels until one has an item after the child the path came
// from, and stops there.
func (c *cursor) upNext() bool {
	for len(c.stack) > 0 {
		if f := &c.stack[len(c.stack)-1]; f.i < f.n.n {
			return true
		}
		c.stack = c.stack[:len(c.stack)-1]
	}
	return false
}

// upPrev pops levels until one has an item before the child the path came
// from, and stops there.
func (c *cursor) upPrev() bool {
	for len(c.stack) > 0 {
		if f := &c.stack[len(c.stack)-1]; f.i > 0 {
			f.i--
			return true
		}
		c.stack = c.stack[:len(c.stack)-1]
	}
	return false
}

func (c *cursor) next() bool {
	f := &c.stack[len(c.stack)-1]
	f.i++
	if f.n.children == nil {
		if f.i < f.n.n {
			return true
		}
		c.stack = c.stack[:len(c.stack)-1]
		return c.upNext()
	}
	return c.downFirst(f.n.children[f.i])
}

func (c *cursor) prev() bool {
	f := &c.stack[len(c.stack)-1]
	if f.n.children == nil {
		if f.i > 0 {
			f.i--
			return true
		}
		c.stack = c.stack[:len(c.stack)-1]
		return c.upPrev()
	}
	return c.downLast(f.n.children[f.i])
}

// seekGE moves to the smallest item with a key >= key.
func (c *cursor) seekGE(key []byte) bool {
	c.reset()
	n := c.root
	if n == nil {
		return false
	}
	for {
		i, found := n.search(key)
		if found {
			c.push(n, i)
			return true
		}
		if n.children == nil {
			if i < n.n {
				c.push(n, i)
				return true
			}
			return c.upNext()
		}
		c.push(n, i)
		n = n.children[i]
	}
}

// seekLT moves to the largest item with a key < key.
func (c *cursor) seekLT(key []byte) bool {
	c.reset()
	n := c.root
	if n == nil {
		return false
	}
	for {
		i, _ := n.search(key)
		if n.children == nil {
			if i > 0 {
				c.push(n, i-1)
				return true
			}
			return c.upPrev()
		}
		c.push(n, i)
		n = n.children[i]
	}
}
