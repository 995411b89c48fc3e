package persist

// What a Store needs from the application (doc.go, "The state machine").
// The journal holds bytes and the Store never looks inside them: the
// application says what a record is, how it changes the state and how
// the state is written down, the way hashicorp/raft's FSM is the
// application's and the raft log only carries its commands.

// StateMachine is the state a Store's records build, implemented by the
// application. S is the implementing type itself (Clone returns it, so
// that Store.View hands the application its own type), R the type of
// the records it applies.
//
// The store keeps two of them: the published state (every durable
// record applied, what View shows) and a look-ahead one (every queued
// record applied too), against which a proposal is checked, so that the
// journal's order is the order of the checks. Both are changed only
// under the store's lock, one call at a time; View's callback gets the
// published one under that lock too. The methods need no locking of
// their own.
type StateMachine[S, R any] interface {
	// Check says whether Apply would accept r, changing nothing. A
	// record Check refuses never reaches the journal: Propose returns
	// Check's error as it is.
	Check(r R) error
	// Apply changes the state by r. It must refuse exactly what Check
	// refuses (changing nothing then) and be deterministic: the same
	// records applied in the same order to equal states give equal
	// states, on the active, on the standby and at every replay. The
	// store calls it only after Check passed on an equal state, except
	// at replay, where a refusal stops OpenStore: the journal then holds
	// a record this state cannot take.
	Apply(r R) error
	// Snapshot encodes the state: what the store's snapshots and
	// backups hold, what InstallSnapshot receives, and what
	// Codec.Load reads back. Equal states give equal bytes.
	Snapshot() ([]byte, error)
	// Clone is an independent copy: changing either does not change
	// the other.
	Clone() S
}

// Codec is how a Store turns the application's records into journal
// payloads and back, and snapshots into states.
type Codec[S, R any] struct {
	// Empty is the state before any record (index 0): a new state
	// directory, or InstallSnapshot of nothing at index 0.
	Empty func() S
	// Load decodes what StateMachine.Snapshot encoded: a snapshot at
	// replay, a backup's state before a restore, the active's state
	// given to InstallSnapshot. It checks everything applying records
	// would, and refuses (an error) bytes that do not make a state; it
	// is never called with the empty state, which has its own bytes.
	// Its input is hostile until checked (a backup file, the peer).
	Load func(snapshot []byte) (S, error)
	// Encode makes the journal payload of a record (at most MaxPayload
	// bytes). The store journals exactly these bytes.
	Encode func(r R) ([]byte, error)
	// Decode reads a journal payload back into the record Encode made
	// it from: at replay, and for the active's records on a standby
	// (AppendReplicated). A payload it refuses stops the replay (or the
	// replicated batch) at that record: use it to refuse records of a
	// format this build does not know rather than half read them. Like
	// Load, its input is hostile until checked.
	Decode func(payload []byte) (R, error)
}
