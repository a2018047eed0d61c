package replicate

import "errors"

// Errors returned by a Replica. Check them with errors.Is.
var (
	// ErrNotLeader: a write was sent to a node that is not the leader.
	ErrNotLeader = errors.New("replicate: not the leader")
	// ErrQuorum: a sync-mode write was committed and applied on the leader,
	// but not enough followers reported it durable in time. The write is
	// not lost on the leader; it is not known to be on the quorum.
	ErrQuorum = errors.New("replicate: quorum not reached")
	// ErrDeposed: a peer holds a newer epoch than this leader.
	ErrDeposed = errors.New("replicate: deposed by a newer epoch")
	// ErrNeedResync: the node's state cannot be continued from its log; it
	// needs a full resync from a leader.
	ErrNeedResync = errors.New("replicate: full resync needed")
	// ErrWouldDiscard: following the leader would throw away more records
	// this node's engine applied than Config.MaxDiscard allows.
	ErrWouldDiscard = errors.New("replicate: following would discard applied records")
	// ErrIdentity: a follower's Hello names another node than the one the
	// transport authenticated (its certificate's name over QUIC).
	ErrIdentity = errors.New("replicate: follower id does not match its certificate")
)
