package flow

import (
	"strings"
	"testing"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/nodeapi"
)

// A transfer to people must go, when no one is free, to a message; the
// engine tags each transfer's outcome for the campaign's abandon rate.
func TestTransferNoOneFree(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{`{"start":"a","states":{"a":{"transfer":{"to":"+14155550100","timeout_seconds":20},"next":"bye"},"bye":{"hangup":true}}}`, "transfer needs failed"},
		{`{"start":"a","states":{"a":{"transfer":{"to":"+14155550100","timeout_seconds":20},"next":"bye","failed":"bye"},"bye":{"hangup":true}}}`, "transfer needs failed"},
		{`{"start":"a","states":{"a":{"transfer":{"to":"+14155550100","timeout_seconds":20},"next":"bye","failed":"mark"},"mark":{"set":{"x":"1"},"next":"sorry"},"sorry":{"play":["x/sorry"],"next":"bye"},"bye":{"hangup":true}}}`, ""},
	} {
		f, err := Parse([]byte(tc.doc))
		if err == nil {
			err = f.Validate(nil)
		}
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.doc, err, tc.want)
		}
	}
	f, err := Parse([]byte(`{"start":"a","states":{"a":{"transfer":{"to":"+14155550100","timeout_seconds":20},"next":"bye","failed":"sorry"},"sorry":{"play":["x/sorry"],"next":"bye"},"bye":{"hangup":true}}}`))
	if err != nil {
		t.Fatal(err)
	}
	next, a, tags, err := Step(f, "a", Input{Kind: nodeapi.InputFailed}, nil)
	if err != nil || next != "sorry" || a.Kind != nodeapi.ActionPlay || tags[campaign.TagTransfer] != campaign.TransferNoOneFree {
		t.Fatalf("no one free: %q %+v %v %v", next, a, tags, err)
	}
	if _, _, tags, _ := Step(f, "a", Input{Kind: nodeapi.InputDone}, nil); tags[campaign.TagTransfer] != campaign.TransferConnected {
		t.Fatalf("connected: %v", tags)
	}
	if _, _, tags, _ := Step(f, "sorry", Input{Kind: nodeapi.InputDone}, nil); tags != nil {
		t.Fatalf("a play state tags %v", tags)
	}
}
