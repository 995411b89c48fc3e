package ha

import "errors"

// Refusals and link errors. Step wraps them with what the administrator
// can do ("ha: a second relationship is refused: remove the standby first
// (ha remove-standby)"); errors.Is matches the sentinel.
var (
	// ErrBasicEdition: the basic edition has no HA.
	ErrBasicEdition = errors.New("ha: not available in the basic edition")
	// ErrSecondRelationship: each server is in at most one relationship.
	ErrSecondRelationship = errors.New("ha: a second relationship is refused")
	// ErrNoRelationship: the command needs a partner and there is none.
	ErrNoRelationship = errors.New("ha: no HA relationship")
	// ErrWrongRole: the command runs on the other server of the pair.
	ErrWrongRole = errors.New("ha: not allowed in this role")
	// ErrSynchronized: refused while the pair is synchronized.
	ErrSynchronized = errors.New("ha: refused while synchronized")
	// ErrSyncInProgress: refused while a synchronization is under way.
	ErrSyncInProgress = errors.New("ha: a synchronization is under way")
	// ErrDemoted: this server learned of a higher epoch and is a
	// disconnected standby.
	ErrDemoted = errors.New("ha: this server is a disconnected standby")
	// ErrConnected: already connected to the partner.
	ErrConnected = errors.New("ha: already connected")
	// ErrConnecting: a connection attempt is under way.
	ErrConnecting = errors.New("ha: a connection attempt is under way")
	// ErrBadAddress: the partner's address is missing.
	ErrBadAddress = errors.New("ha: bad partner address")
	// ErrLinkInUse: a second link to the partner; the first one is kept.
	ErrLinkInUse = errors.New("ha: already linked to the partner")
	// ErrStaleEpoch: the partner acts with an epoch lower than ours.
	ErrStaleEpoch = errors.New("ha: the partner's epoch is stale")
	// ErrPeerConflict: the partner's role does not fit ours (both active
	// at the same epoch, both standby, ...).
	ErrPeerConflict = errors.New("ha: the partner's role conflicts with ours")
	// ErrRemoved: the relationship was removed (the goodbye's reason).
	ErrRemoved = errors.New("ha: relationship removed")
	// ErrTookOver: the standby took over (the goodbye's reason).
	ErrTookOver = errors.New("ha: the standby took over")
	// ErrReconnectStopped: automatic reconnection gave up.
	ErrReconnectStopped = errors.New("ha: automatic reconnection stopped")
	// ErrPartnerIdentity: a relationship is set without a way to
	// authenticate the partner (its name or a pinned fingerprint), or
	// with a malformed name.
	ErrPartnerIdentity = errors.New("ha: the partner's identity is needed")
	// ErrNotPartner: the peer behind a link is not the configured partner
	// (its certificate does not name it, or is not the pinned one): its
	// Hello changes nothing.
	ErrNotPartner = errors.New("ha: the peer is not the configured partner")
)
