package campaign

import "testing"

func TestRecycles(t *testing.T) {
	r := Recycle{Dispositions: []string{NoAnswer, Busy}, MaxTotalAttempts: 6}
	for _, tc := range []struct {
		k    RecycleCandidate
		want string // "" = recycled
	}{
		{RecycleCandidate{State: ContactFailed, Attempts: 3, LastDisposition: NoAnswer}, ""},
		{RecycleCandidate{State: ContactDone, Attempts: 3, LastDisposition: Machine}, SkipFinal},
		{RecycleCandidate{State: ContactDNC, Attempts: 1, LastDisposition: NoAnswer}, SkipFinal},
		{RecycleCandidate{State: ContactFailed, Attempts: 1, LastDisposition: InvalidNumber}, SkipFinal},
		{RecycleCandidate{State: ContactFailed, Attempts: 1, LastDisposition: NoAnswer, LastTags: map[string]string{"result": "refused"}}, SkipFinal},
		{RecycleCandidate{State: ContactFailed, Attempts: 1, LastDisposition: NoAnswer, LastTags: map[string]string{"dnc": "true"}}, SkipFinal},
		{RecycleCandidate{State: ContactPending, Attempts: 1, LastDisposition: Busy}, SkipInPlay},
		{RecycleCandidate{State: ContactLeased, Attempts: 1, LastDisposition: Busy}, SkipInPlay},
		{RecycleCandidate{State: ContactFailed, Attempts: 3, LastDisposition: Busy, DNC: true}, SkipDNC},
		{RecycleCandidate{State: ContactFailed, Attempts: 6, LastDisposition: Busy}, SkipAttempts},
	} {
		ok, why := r.Recycles(tc.k)
		if ok != (tc.want == "") || why != tc.want {
			t.Errorf("%+v: %v %q, want %q", tc.k, ok, why, tc.want)
		}
	}
	for _, bad := range []Recycle{{}, {Dispositions: []string{Answered}}, {Dispositions: []string{InvalidNumber}}, {Dispositions: []string{Machine}}, {Dispositions: []string{"nope"}}, {Dispositions: []string{Busy}, MaxTotalAttempts: -1}} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
