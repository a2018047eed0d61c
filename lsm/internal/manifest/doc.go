// Package manifest holds the lsm engine's record of which SSTables make up
// the tree: version edits (files added and removed by flushes and
// compactions, plus the log number, next file number and last sequence
// number), their encoding in the manifest log, and the immutable Version
// that results from applying them.
//
// The manifest log itself is a file of internal/record frames, one encoded
// Edit per frame; the first frame of a manifest is a snapshot of the whole
// version (Version.Snapshot), so an old manifest can be deleted once a new
// one is named by CURRENT. The lsm package writes and rotates it.
package manifest
