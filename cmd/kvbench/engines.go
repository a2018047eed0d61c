package main

// The engines kvbench can open by name: each import registers one. Adding an
// engine is one line here (and one in cmd/kvbench/internal/bench/engines_test.go), e.g.
//
//	_ "github.com/logkv/logkv/lsm"
//	_ "github.com/logkv/logkv/badger"
import (
	_ "github.com/logkv/logkv/bitcask"
	_ "github.com/logkv/logkv/lsm"
	_ "github.com/logkv/logkv/memory"
)
