package flow

import (
	"testing"

	"github.com/elastidial/elastidial/flow/examples"
)

// FuzzParse: no flow document a campaign manager saves makes Parse or
// Validate panic, and a valid flow survives its compiled form.
func FuzzParse(f *testing.F) {
	f.Add(examples.Reminder)
	f.Add(examples.Survey)
	f.Add([]byte(`{"start":"a","states":{"a":{"hangup":true}}}`))
	f.Add([]byte(`{"start":"a","states":{"a":{"play":["x/y"],"next":"a"}}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		fl, err := Parse(doc)
		if err != nil || fl.Validate(nil) != nil {
			return
		}
		b, err := fl.MarshalBinary()
		if err != nil {
			t.Fatalf("compile a valid flow: %v", err)
		}
		var back Flow
		if err := back.UnmarshalBinary(b); err != nil {
			t.Fatalf("read back a compiled flow: %v", err)
		}
	})
}
