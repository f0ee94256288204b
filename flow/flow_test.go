package flow

import (
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/elastidial/elastidial/flow/examples"
	"github.com/elastidial/elastidial/nodeapi"
)

func mustParse(t testing.TB, doc []byte) *Flow {
	t.Helper()
	f, err := Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Validate(func(string) bool { return true }); err != nil {
		t.Fatal(err)
	}
	return f
}

// walk runs a call through a flow: inputs in order, and returns the
// states entered, the last action and all tags.
func walk(t *testing.T, f *Flow, fields map[string]string, inputs ...Input) ([]string, nodeapi.Action, map[string]string) {
	t.Helper()
	tags := map[string]string{}
	var path []string
	state, act, tg, err := Step(f, "", Input{Kind: nodeapi.InputStart}, fields)
	for _, in := range append([]Input{{}}, inputs...) {
		if in.Kind != "" {
			state, act, tg, err = Step(f, state, in, fields)
		}
		if err != nil {
			t.Fatal(err)
		}
		maps.Copy(tags, tg)
		path = append(path, state)
	}
	return path, act, tags
}

func TestReminderFlow(t *testing.T) {
	f := mustParse(t, examples.Reminder)
	fields := map[string]string{"first_name": "Ann", "appointment_date": "2026-03-14"}
	done, digits := Input{Kind: nodeapi.InputDone}, func(d string) Input { return Input{Kind: nodeapi.InputDigits, Digits: d} }
	timeout := Input{Kind: nodeapi.InputTimeout}

	path, act, _ := walk(t, f, fields, done)
	if path[1] != "greet" || act.Kind != nodeapi.ActionSpeak || act.Text != "Hello Ann. This is a reminder of your appointment on" {
		t.Fatalf("greet: %v %+v", path, act)
	}
	path, act, _ = walk(t, f, fields, done, done)
	if path[2] != "date" || act.Kind != nodeapi.ActionSayDateTime || act.Text != "1773446400" || act.Format != FormatDate {
		t.Fatalf("date: %v %+v", path, act)
	}
	// Speech that fails (no engine) and a date that is not one go on.
	path, _, _ = walk(t, f, map[string]string{"first_name": "Ann", "appointment_date": "0314"}, done, Input{Kind: nodeapi.InputFailed}, Input{Kind: nodeapi.InputFailed})
	if path[3] != "menu" {
		t.Fatalf("failed steps: %v", path)
	}
	for _, tc := range []struct {
		name   string
		inputs []Input
		last   string
		tags   map[string]string
	}{
		{"confirm", []Input{done, done, done, digits("1"), done}, "bye", map[string]string{"result": "confirmed"}},
		{"cancel", []Input{done, done, done, digits("2")}, "cancelled_msg", map[string]string{"result": "cancelled"}},
		{"opt out", []Input{done, done, done, digits("9")}, "opt_out_msg", map[string]string{"result": "opted_out", "dnc": "true"}},
		{"retries then give up", []Input{done, done, done, timeout, digits("7"), timeout}, "bye", map[string]string{"result": "no_response"}},
		{"retry then confirm", []Input{done, done, done, timeout, digits("1")}, "confirmed_msg", map[string]string{"result": "confirmed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, act, tags := walk(t, f, fields, tc.inputs...)
			if got := path[len(path)-1]; got != tc.last {
				t.Errorf("ended in %q (path %v), want %q", got, path, tc.last)
			}
			if tc.last == "bye" && act.Kind != nodeapi.ActionHangup {
				t.Errorf("last action %+v, want hangup", act)
			}
			if !maps.Equal(tags, tc.tags) {
				t.Errorf("tags %v, want %v", tags, tc.tags)
			}
		})
	}
	// Retries show in the state and repeat the gather.
	st, act, _, _ := Step(f, "menu", Input{Kind: nodeapi.InputTimeout}, fields)
	if st != "menu~1" || act.Kind != nodeapi.ActionGather || act.MaxDigits != 1 || act.TimeoutMS != 6000 {
		t.Fatalf("retry: %q %+v", st, act)
	}
}

func TestSurveyFlow(t *testing.T) {
	f := mustParse(t, examples.Survey)
	_, act, _ := walk(t, f, nil)
	if act.Kind != nodeapi.ActionDetect {
		t.Fatalf("first action %+v", act)
	}
	path, _, tags := walk(t, f, nil, Input{Kind: nodeapi.InputMachine})
	if path[1] != "leave_message" || tags["result"] != "machine" {
		t.Fatalf("machine: %v %v", path, tags)
	}
	path, act, tags = walk(t, f, map[string]string{"first_name": "Bo"}, Input{Kind: nodeapi.InputHuman}, Input{Kind: nodeapi.InputDone})
	if path[2] != "ask" || act.Kind != nodeapi.ActionGather || act.Text != "Bo, did we solve your problem? Press 1 for yes, or 2 for no." {
		t.Fatalf("ask: %v %+v", path, act)
	}
	path, _, tags = walk(t, f, nil, Input{Kind: nodeapi.InputHuman}, Input{Kind: nodeapi.InputDone}, Input{Kind: nodeapi.InputDigits, Digits: "1"})
	if path[3] != "thanks" || tags["result"] != "yes" {
		t.Fatalf("yes: %v %v", path, tags)
	}
	// Speech failed: the recorded question.
	path, act, _ = walk(t, f, nil, Input{Kind: nodeapi.InputHuman}, Input{Kind: nodeapi.InputDone}, Input{Kind: nodeapi.InputFailed})
	if path[3] != "ask_recorded" || act.Kind != nodeapi.ActionGather || act.Prompts[0] != "survey/question" {
		t.Fatalf("fallback: %v %+v", path, act)
	}
	if _, _, _, err := Step(f, "nowhere", Input{Kind: nodeapi.InputDone}, nil); !errors.Is(err, ErrBadState) {
		t.Fatalf("unknown state: %v", err)
	}
}

func TestValidationPointsAtTheState(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{`{"start":"a","states":{"a":{"play":["x/y"],"next":"b"}}}`, `state "a": goes to unknown state "b"`},
		{`{"start":"a","states":{"a":{"hangup":true},"b":{"hangup":true}}}`, `state "b": is unreachable`},
		{`{"start":"a","states":{"a":{"play":["x/y"],"hangup":true}}}`, `state "a": has 2 actions`},
		{`{"start":"a","states":{"a":{}}}`, `state "a": has no action`},
		{`{"start":"a","states":{"a":{"gather":{"prompt":"x/y","max_digits":1,"timeout_ms":50},"on":{"1":"a"}}}}`, `gather timeout_ms 50`},
		{`{"start":"a","states":{"a":{"play":["x/y"],"next":"b","failed":"b"},"b":{"play":["x/z"],"next":"a","failed":"a"}}}`, `loops forever`},
		{`{"start":"a","states":{"a":{"set":{"k":"v"},"next":"b"},"b":{"set":{"k":"w"},"next":"a"}}}`, `state "a": set, set_var, branch and http states loop back to themselves`},
		{`{"start":"a","states":{"a":{"play":["../etc/passwd"]}}}`, `not a valid audio name`},
		{`{"start":"a","states":{"a":{"play":["x/missing"]}}}`, `not in the audio library`},
		{`{"start":"a","states":{"a":{"transfer":{"to":"; rm -rf","timeout_seconds":30}}}}`, `transfer to`},
		{`{"start":"zz","states":{"a":{"hangup":true}}}`, `start state "zz" does not exist`},
		{`{"start":"a","states":{"a":{"transfer":{"to":"911","timeout_seconds":30}}}}`, `state "a": transfer to "911": "911" is an emergency or N11 service number`},
		{`{"start":"a","states":{"a":{"transfer":{"to":"112","timeout_seconds":30}}}}`, `emergency`},
		{`{"start":"a","states":{"a":{"transfer":{"to":"sip:999@carrier","timeout_seconds":30}}}}`, `emergency`},
		{`{"start":"a","states":{"a":{"transfer":{"to":"+19002345678","timeout_seconds":30}}}}`, `premium-rate`},
	} {
		f, err := Parse([]byte(tc.doc))
		if err == nil {
			err = f.Validate(func(p string) bool { return p != "x/missing" })
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.doc, err, tc.want)
		}
	}
	if _, err := Parse([]byte(`{"start":"a","states":{"a":{"hangup":true,"colour":"red"}}}`)); err == nil || !strings.Contains(err.Error(), "colour") {
		t.Errorf("unknown field: %v", err)
	}
}

func FuzzStep(f *testing.F) {
	f.Add(examples.Reminder, "menu", "digits", "1")
	f.Add(examples.Survey, "ask~5", "timeout", "")
	f.Fuzz(func(t *testing.T, doc []byte, state, kind, digits string) {
		fl, err := Parse(doc)
		if err != nil || fl.Validate(nil) != nil {
			return
		}
		Step(fl, state, Input{Kind: kind, Digits: digits}, map[string]string{"a": "1"})
	})
}

func TestCheckColumnsNamesStateAndField(t *testing.T) {
	f, err := Parse([]byte(`{"name": "x", "start": "say", "states": {
		"say": {"say_digits": "{{account}}", "next": "rec"},
		"rec": {"record": {"name": "msg-{{ id }}", "max_seconds": 5}, "next": "tag"},
		"tag": {"set": {"who": "{{name}}"}, "next": "bye"},
		"bye": {"hangup": true}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.CheckColumns([]string{"phone", "account", "id", "name"}); err != nil {
		t.Errorf("all columns present: %v", err)
	}
	err = f.CheckColumns([]string{"phone", "id"})
	want := `state "say": say_digits uses field "account", which the dial list has no column for; ` +
		`state "tag": tag who uses field "name", which the dial list has no column for`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

// A flow saved before transfer targets were checked still never bridges a
// call to an emergency number: the step ends the call instead.
func TestStepNeverTransfersToEmergency(t *testing.T) {
	f, err := Parse([]byte(`{"start":"a","states":{"a":{"transfer":{"to":"911","timeout_seconds":30}},"b":{"transfer":{"to":"+14155550100","timeout_seconds":30}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, a, _, err := Step(f, "", Input{Kind: nodeapi.InputStart}, nil); err != nil || a.Kind != nodeapi.ActionHangup {
		t.Fatalf("transfer to 911: %+v %v, want a hang-up", a, err)
	}
	f.Start = "b"
	if _, a, _, err := Step(f, "", Input{Kind: nodeapi.InputStart}, nil); err != nil || a.Kind != nodeapi.ActionTransfer {
		t.Fatalf("transfer to a person: %+v %v", a, err)
	}
}
