package flow

import (
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/nodeapi"
)

// A PIN check: the contact's name spoken, a branch on a field, a date
// said with SAY DATETIME, a PIN gathered into a variable and compared
// with the contact's.
const pinFlow = `{"name": "pin", "start": "hello", "language": "{{lang}}", "voice": "{{voice}}",
 "states": {
  "hello": {"say": "Hello {{name}}, this is your bank.", "next": "vip", "failed": "bye"},
  "vip": {"branch": [
     {"value": "{{balance}}", "op": "gt", "arg": "1000", "goto": "premium"},
     {"value": "{{email}}", "op": "missing", "goto": "no_email"},
     {"value": "{{email}}", "op": "match", "arg": "@example\\.com$", "goto": "staff"}],
   "next": "due"},
  "premium": {"set_var": {"tier": "premium", "greeting": "dear {{name}}"}, "next": "due"},
  "no_email": {"set": {"email": "missing"}, "next": "due"},
  "staff": {"set_var": {"tier": "staff"}, "next": "due"},
  "due": {"say": "{{due_date}}", "as": "date", "next": "amount", "failed": "amount"},
  "amount": {"say": "{{balance}}", "as": "money", "next": "pin", "failed": "pin"},
  "pin": {"gather": {"say": "Enter your PIN, then press hash.", "max_digits": 8, "timeout_ms": 5000, "retries": 1, "terminator": "#", "var": "entered"},
          "on": {"*": "check"}, "timeout": "bye", "failed": "bye"},
  "check": {"branch": [{"value": "{{entered}}", "op": "eq", "arg": "{{pin}}", "goto": "ok"}], "next": "wrong"},
  "ok": {"set": {"result": "verified", "tier": "{{tier}}"}, "next": "bye"},
  "wrong": {"set": {"result": "wrong_pin"}, "next": "bye"},
  "bye": {"hangup": true}}}`

type call struct {
	t      *testing.T
	f      *Flow
	fields map[string]string
	state  string
	vars   map[string]string
	tags   map[string]string
	path   []string
}

func (c *call) step(kind, digits string) nodeapi.Action {
	c.t.Helper()
	o, err := Run(c.f, c.state, Input{Kind: kind, Digits: digits}, c.fields, c.vars)
	if err != nil {
		c.t.Fatal(err)
	}
	c.state, c.vars = o.State, o.Vars
	maps.Copy(c.tags, o.Tags)
	c.path = append(c.path, o.State)
	return o.Action
}

func TestDataDrivenFlow(t *testing.T) {
	f := mustParse(t, []byte(pinFlow))
	base := map[string]string{"name": "Ann", "balance": "250.5", "email": "ann@mail.test", "due_date": "2026-12-24", "pin": "4321", "lang": "en", "voice": "slt"}
	with := func(kv ...string) map[string]string {
		m := maps.Clone(base)
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name   string
		fields map[string]string
		pin    string
		tags   map[string]string
		via    string
	}{
		{"right pin", base, "4321", map[string]string{"result": "verified", "tier": ""}, "due"},
		{"wrong pin", base, "1234", map[string]string{"result": "wrong_pin"}, "due"},
		{"premium by number", with("balance", "1500"), "4321", map[string]string{"result": "verified", "tier": "premium"}, "premium"},
		{"1000 is not above 1000", with("balance", "1000.00"), "4321", map[string]string{"result": "verified", "tier": ""}, "due"},
		{"no number never compares", with("balance", "lots"), "4321", map[string]string{"result": "verified", "tier": ""}, "due"},
		{"missing email", with("email", " "), "4321", map[string]string{"result": "verified", "tier": "", "email": "missing"}, "no_email"},
		{"regex", with("email", "bob@example.com"), "4321", map[string]string{"result": "verified", "tier": "staff"}, "staff"},
		{"leading zero pin compares as text", with("pin", "0042"), "42", map[string]string{"result": "verified", "tier": ""}, "due"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &call{t: t, f: f, fields: tc.fields, tags: map[string]string{}}
			a := c.step(nodeapi.InputStart, "")
			if a.Kind != nodeapi.ActionSpeak || a.Text != "Hello "+tc.fields["name"]+", this is your bank." || a.Voice != "slt" || a.Language != "en" {
				t.Fatalf("hello: %+v", a)
			}
			a = c.step(nodeapi.InputDone, "")
			if c.state != "due" || a.Kind != nodeapi.ActionSayDateTime || a.Format != FormatDate {
				t.Fatalf("due: %s %+v", c.state, a)
			}
			if want := "1798070400"; tc.fields["due_date"] == "2026-12-24" && a.Text != want {
				t.Fatalf("date %s, want %s (2026-12-24 00:00 UTC)", a.Text, want)
			}
			a = c.step(nodeapi.InputDone, "")
			if a.Kind != nodeapi.ActionSayMoney {
				t.Fatalf("amount: %+v", a)
			}
			a = c.step(nodeapi.InputDone, "")
			if a.Kind != nodeapi.ActionGather || a.Text != "Enter your PIN, then press hash." || a.MaxDigits != 8 || len(a.Prompts) != 0 || a.Voice != "slt" {
				t.Fatalf("pin: %+v", a)
			}
			a = c.step(nodeapi.InputDigits, tc.pin)
			if a.Kind != nodeapi.ActionHangup || c.vars["entered"] != tc.pin {
				t.Fatalf("after the pin: %+v vars %v", a, c.vars)
			}
			if !maps.Equal(c.tags, tc.tags) {
				t.Errorf("tags %v, want %v", c.tags, tc.tags)
			}
		})
	}
	// The engine keeps no memory: the variables come back from the node.
	o, err := Run(f, "check", Input{Kind: nodeapi.InputDone}, base, map[string]string{"entered": "4321"})
	_ = o
	if err != nil {
		t.Fatal(err)
	}
	o, _ = Run(f, "pin", Input{Kind: nodeapi.InputDigits, Digits: "4321"}, base, map[string]string{"tier": "staff"})
	if o.Tags["tier"] != "staff" || o.Tags["result"] != "verified" {
		t.Errorf("variables from the node: %+v", o)
	}
}

func TestSayAs(t *testing.T) {
	for _, tc := range []struct{ as, in, kind, text, format string }{
		{"", "  Hello\n\tAnn  ", nodeapi.ActionSpeak, "Hello Ann", ""},
		{"speech", "Hi", nodeapi.ActionSpeak, "Hi", ""},
		{"digits", "12-34", nodeapi.ActionSayDigits, "1234", ""},
		{"number", "1,234", nodeapi.ActionSayNumber, "1234", ""},
		{"number", "-7", nodeapi.ActionSayNumber, "-7", ""},
		{"number", "12.5", nodeapi.ActionSayNumber, "", ""},
		{"number", "99999999999", nodeapi.ActionSayNumber, "", ""},
		{"alpha", "AB-12; rm", nodeapi.ActionSayAlpha, "AB-12 rm", ""},
		{"date", "2026-12-24", nodeapi.ActionSayDateTime, "1798070400", FormatDate},
		{"time", "14:30", nodeapi.ActionSayDateTime, "52200", FormatTime},
		{"datetime", "2026-12-24 14:30", nodeapi.ActionSayDateTime, "1798122600", FormatDateTime},
		{"datetime", "2026-12-24T14:30:00+01:00", nodeapi.ActionSayDateTime, "1798122600", FormatDateTime},
		{"date", "next tuesday", nodeapi.ActionSayDateTime, "", FormatDate},
		{"money", "$1,234.5", nodeapi.ActionSayMoney, "1234.50", ""},
		{"money", "12", nodeapi.ActionSayMoney, "12.00", ""},
		{"money", "12.345", nodeapi.ActionSayMoney, "", ""},
		{"money", "twelve", nodeapi.ActionSayMoney, "", ""},
	} {
		a := say(tc.as, tc.in)
		if a.Kind != tc.kind || a.Text != tc.text || a.Format != tc.format {
			t.Errorf("say %q as %q: %+v, want %s %q %q", tc.in, tc.as, a, tc.kind, tc.text, tc.format)
		}
	}
	if w, _ := ParseWhen("2026-12-24 14:30"); !w.Equal(time.Date(2026, 12, 24, 14, 30, 0, 0, time.UTC)) {
		t.Errorf("ParseWhen: %v", w)
	}
}

func TestDataValidationNamesStateAndField(t *testing.T) {
	hang := `,"bye":{"hangup":true}`
	for _, tc := range []struct{ states, want string }{
		{`"a":{"say":"x","as":"shout","next":"bye"}`, `state "a": say as "shout": want one of speech, digits`},
		{`"a":{"say_digits":"1","as":"digits","next":"bye"}`, `state "a": "as" goes with "say"`},
		{`"a":{"say":"` + strings.Repeat("x", MaxSayText+1) + `","next":"bye"}`, `state "a": say text is 3001 characters`},
		{`"a":{"gather":{"max_digits":4,"timeout_ms":3000},"on":{"*":"bye"}}`, `state "a": gather needs a prompt (audio) or say`},
		{`"a":{"gather":{"prompt":"x/y","say":"hi","max_digits":4,"timeout_ms":3000},"on":{"*":"bye"}}`, `state "a": gather has both prompt and say`},
		{`"a":{"gather":{"say":"hi","max_digits":4,"timeout_ms":3000,"terminator":"*"},"on":{"*":"bye"}}`, `state "a": gather terminator "*": Asterisk's GET DATA ends an entry with "#" only`},
		{`"a":{"gather":{"say":"hi","max_digits":4,"timeout_ms":3000,"var":"my pin"},"on":{"*":"bye"}}`, `state "a": gather var "my pin"`},
		{`"a":{"set_var":{"x-y":"1"},"next":"bye"}`, `state "a": set_var "x-y": variable names`},
		{`"a":{"set_var":{"x":"1"}}`, `state "a": a set, set_var, branch or http state needs next`},
		{`"a":{"branch":[],"next":"bye"}`, `state "a": branch has no cases`},
		{`"a":{"branch":[{"value":"{{x}}","op":"like","goto":"bye"}],"next":"bye"}`, `state "a": branch case 1: op "like": want one of eq, ne`},
		{`"a":{"branch":[{"value":"{{x}}","op":"match","arg":"(","goto":"bye"}],"next":"bye"}`, `state "a": branch case 1: arg "(" is not a regular expression`},
		{`"a":{"branch":[{"value":"{{x}}","op":"gt","arg":"ten","goto":"bye"}],"next":"bye"}`, `state "a": branch case 1: op gt compares numbers; arg "ten" is not a number`},
		{`"a":{"branch":[{"value":"{{x}}","op":"missing","arg":"1","goto":"bye"}],"next":"bye"}`, `state "a": branch case 1: op missing takes no arg`},
		{`"a":{"branch":[{"value":"","op":"present","goto":"bye"}],"next":"bye"}`, `state "a": branch case 1: value is empty`},
		{`"a":{"branch":[{"value":"{{x}}","op":"present","goto":"nowhere"}],"next":"bye"}`, `state "a": goes to unknown state "nowhere"`},
		{`"a":{"branch":[{"value":"{{x}}","op":"present","goto":"b"}],"next":"bye"},"b":{"set_var":{"x":""},"next":"a"}`, `loop back to themselves`},
	} {
		doc := `{"start":"a","states":{` + tc.states + hang + `}}`
		f, err := Parse([]byte(doc))
		if err == nil {
			err = f.Validate(nil)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.200s:\n err = %.300v\nwant %q", tc.states, err, tc.want)
		}
	}
	f, _ := Parse([]byte(`{"start":"a","language":"{{lang}} x","states":{"a":{"hangup":true}}}`))
	if err := f.Validate(nil); err == nil || !strings.Contains(err.Error(), `flow language "{{lang}} x"`) {
		t.Errorf("language: %v", err)
	}
}

func TestCheckColumnsKnowsVariables(t *testing.T) {
	f := mustParse(t, []byte(pinFlow))
	cols := []string{"phone", "name", "balance", "email", "due_date", "pin", "lang", "voice"}
	if err := f.CheckColumns(cols); err != nil {
		t.Fatalf("all there: %v", err)
	}
	err := f.CheckColumns([]string{"phone", "name", "balance", "email", "due_date", "lang"})
	want := `the flow's voice uses field "voice", which the dial list has no column for; ` +
		`state "check": branch case 1 arg uses field "pin", which the dial list has no column for`
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}

// A loop through a variable may end, but it is refused: pass-through
// states run with no caller input, and the engine bounds them anyway.
func TestRunBoundsPassThrough(t *testing.T) {
	f, _ := Parse([]byte(`{"start":"a","states":{"a":{"branch":[{"value":"{{x}}","op":"present","goto":"b"}],"next":"b"},"b":{"set_var":{"x":"1"},"next":"a"}}}`))
	if _, err := Run(f, "", Input{Kind: nodeapi.InputStart}, nil, nil); err == nil || !strings.Contains(err.Error(), "passes through more than") {
		t.Fatalf("got %v", err)
	}
}

func TestVarsAreBounded(t *testing.T) {
	vars := map[string]string{}
	for i := range MaxVars + 5 {
		setVar(vars, strings.Repeat("v", i+1), strings.Repeat("x", MaxVarLen+10))
	}
	if len(vars) != MaxVars || len(vars["v"]) != MaxVarLen {
		t.Fatalf("%d vars, first %d bytes", len(vars), len(vars["v"]))
	}
}

func FuzzRun(f *testing.F) {
	f.Add([]byte(pinFlow), "pin", "digits", "1234", "entered", "99")
	f.Add([]byte(pinFlow), "", "start", "", "x", "")
	f.Fuzz(func(t *testing.T, doc []byte, state, kind, digits, k, v string) {
		fl, err := Parse(doc)
		if err != nil || fl.Validate(nil) != nil {
			return
		}
		o, err := Run(fl, state, Input{Kind: kind, Digits: digits}, map[string]string{"balance": v, "name": v}, map[string]string{k: v})
		if err == nil && len(o.Vars) > MaxVars+1 {
			t.Fatalf("%d vars", len(o.Vars))
		}
	})
}
