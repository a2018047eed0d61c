package node

import "fmt"

// globMatch reports whether s matches the Redis glob pattern p, byte-wise as
// Redis' stringmatchlen does: * any run of bytes, ? any one byte, [abc] [^abc]
// [a-z] a class, and \x the byte x. On a mismatch it backtracks only to the
// last *, which is enough (a later * subsumes an earlier one), so the cost is
// O(len(p)*len(s)), never exponential.
func globMatch(p, s []byte) bool {
	var starP, starS []byte // pattern after the last *, and where s resumes
	star := false
	for {
		if len(p) > 0 {
			if p[0] == '*' {
				star, starP, starS = true, p[1:], s
				p = p[1:]
				continue
			}
			if len(s) > 0 {
				if rest, ok := matchOne(p, s[0]); ok {
					p, s = rest, s[1:]
					continue
				}
			}
		} else if len(s) == 0 {
			return true
		}
		if !star || len(starS) == 0 {
			return false
		}
		starS = starS[1:]
		p, s = starP, starS
	}
}

// matchOne matches byte c against the single-byte term at the start of p
// (not a *) and returns the pattern after the term.
func matchOne(p []byte, c byte) ([]byte, bool) {
	switch p[0] {
	case '?':
		return p[1:], true
	case '[':
		return matchClass(p[1:], c)
	case '\\':
		if len(p) > 1 {
			return p[2:], p[1] == c
		}
	}
	return p[1:], p[0] == c
}

// matchClass matches c against the class starting after '[' and returns the
// pattern after the closing ']' (or the end, as Redis treats an unclosed
// class).
func matchClass(p []byte, c byte) ([]byte, bool) {
	not := len(p) > 0 && p[0] == '^'
	if not {
		p = p[1:]
	}
	match := false
	for len(p) > 0 && p[0] != ']' {
		switch {
		case p[0] == '\\' && len(p) > 1:
			match = match || p[1] == c
			p = p[2:]
		case len(p) >= 3 && p[1] == '-':
			// As stringmatchlen: the range's end may be ']' ([a-] is
			// the range ']'..'a', and the class runs on).
			lo, hi := p[0], p[2]
			if lo > hi {
				lo, hi = hi, lo
			}
			match = match || (c >= lo && c <= hi)
			p = p[3:]
		default:
			match = match || p[0] == c
			p = p[1:]
		}
	}
	if len(p) > 0 {
		p = p[1:] // the ']'
	}
	return p, match != not
}

// maxPatternLen bounds a SCAN or KEYS MATCH pattern: matching costs up to
// len(pattern) x len(key) per key, and a 64 KiB pattern held the event loop
// for seconds. Redis' own patterns are rarely longer than a key.
const maxPatternLen = 1024

// errPatternTooLong refuses a longer pattern.
var errPatternTooLong = fmt.Errorf("MATCH pattern longer than %d bytes: use a shorter pattern (a literal prefix and * are cheapest)", maxPatternLen)

// checkPattern refuses a pattern whose matching would cost too much.
func checkPattern(p []byte) error {
	if len(p) > maxPatternLen {
		return errPatternTooLong
	}
	return nil
}

// globPrefix returns the literal prefix of pattern p: every key it matches
// starts with it, so a scan can seek there and stop past it.
func globPrefix(p []byte) []byte {
	var out []byte
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '*', '?', '[':
			return out
		case '\\':
			if i+1 < len(p) {
				i++
			}
		}
		out = append(out, p[i])
	}
	return out
}
