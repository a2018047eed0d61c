//go:build race

package bitcask

const raceEnabled = true
