package logkv

// Skipped is a part of a damaged file that a salvage reader (bitcask,
// lsm and the commit log each have a Salvage function, for kvnode
// salvage) could not read and left out.
type Skipped struct {
	Path string // the file
	Off  int64  // where the part starts, or -1 when the reader cannot say
	Len  int64  // its length in bytes, or -1 when it is not a byte range
	Why  string // what was wrong with it
}
