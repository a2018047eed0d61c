//go:build race

package replicate

func init() { raceEnabled = true }
