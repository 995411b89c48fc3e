package session

import "testing"

func TestCount(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		sessions []*Session
		want     Counts
	}{
		{name: "none", want: Counts{}},
		{name: "one of each", sessions: []*Session{{Status: Inactive}, {Status: Normal, Recoverable: true},
			{Status: Warning}, {Status: Severe, Recoverable: true}},
			want: Counts{Total: 4, Inactive: 1, Normal: 1, Warning: 1, Severe: 1, Recoverable: 2}},
		{name: "all normal", sessions: []*Session{{Status: Normal}, {Status: Normal}},
			want: Counts{Total: 2, Normal: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := Count(tc.sessions); got != tc.want {
				t.Errorf("Count = %+v, want %+v", got, tc.want)
			}
		})
	}
}
