package session

// Counts are the sessions by status, and how many are recoverable: what
// lockstepctl status and STATUS= summarize.
type Counts struct {
	Total, Inactive, Normal, Warning, Severe, Recoverable int
}

// Count counts sessions.
func Count(sessions []*Session) Counts {
	var c Counts
	for _, se := range sessions {
		c.Total++
		switch se.Status {
		case Inactive:
			c.Inactive++
		case Normal:
			c.Normal++
		case Warning:
			c.Warning++
		case Severe:
			c.Severe++
		}
		if se.Recoverable {
			c.Recoverable++
		}
	}
	return c
}
