package flow

import (
	"testing"

	"github.com/elastidial/elastidial/flow/examples"
	"github.com/elastidial/elastidial/nodeapi"
)

// Spoken lists what a call will say from the contact's fields alone,
// rendered as the call would hear it; text that needs a variable the call
// has not made yet, or a field the contact lacks, is left for its step.
func TestSpoken(t *testing.T) {
	f, err := Parse(examples.Reminder)
	if err != nil {
		t.Fatal(err)
	}
	got := f.Spoken(map[string]string{"first_name": "Ada", "appointment_date": "2026-12-24"})
	if len(got) != 1 || got[0].Kind != nodeapi.ActionSpeak || got[0].Text != "Hello Ada. This is a reminder of your appointment on" {
		t.Errorf("reminder: %+v", got)
	}
	if got := f.Spoken(map[string]string{"appointment_date": "2026-12-24"}); len(got) != 0 {
		t.Errorf("without first_name: %+v", got)
	}
	g, err := Parse([]byte(`{"start": "ask", "states": {
		"ask": {"gather": {"say": "Your code, {{first_name}}?", "max_digits": 4, "var": "code"}, "next": "echo", "timeout": "bye"},
		"echo": {"say": "You typed {{code}}", "next": "bye", "failed": "bye"},
		"bye": {"hangup": true}}}`))
	if err != nil {
		t.Fatal(err)
	}
	got = g.Spoken(map[string]string{"first_name": "Bo"})
	if len(got) != 1 || got[0].Kind != nodeapi.ActionGather || got[0].Text == "" {
		t.Errorf("gather prompt: %+v", got)
	}
}
