package campaign

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func zone(t testing.TB, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func running() *Campaign {
	c := &Campaign{Name: "x", Trunk: "t", CallerID: "+14155550100", Target: 1, Status: StatusRunning}
	c.Defaults()
	return c
}

// Tuesday 2026-03-10 12:00 in New York (EDT).
var noon = time.Date(2026, 3, 10, 16, 0, 0, 0, time.UTC)

func TestDecide(t *testing.T) {
	ny := zone(t, "America/New_York")
	la := zone(t, "America/Los_Angeles")
	later := noon.Add(time.Hour)
	for _, tc := range []struct {
		name  string
		mod   func(c *Campaign, k *Contact, f *Facts)
		at    time.Time
		want  Reason
		until time.Time
	}{
		{name: "callable", at: noon, want: Allowed},
		{name: "paused", mod: func(c *Campaign, _ *Contact, _ *Facts) { c.Status = StatusPaused }, at: noon, want: ReasonNotRunning},
		{name: "start_at ahead", mod: func(c *Campaign, _ *Contact, _ *Facts) { c.StartAt = &later }, at: noon, want: ReasonNotStarted, until: later},
		{name: "start_at reached", mod: func(c *Campaign, _ *Contact, _ *Facts) { c.StartAt = &later }, at: later, want: Allowed},
		{name: "done", mod: func(_ *Campaign, k *Contact, _ *Facts) { k.State = ContactDone }, at: noon, want: ReasonFinal},
		{name: "attempts used", mod: func(_ *Campaign, k *Contact, _ *Facts) { k.Attempts = 3 }, at: noon, want: ReasonExhausted},
		{name: "dnc", mod: func(_ *Campaign, _ *Contact, f *Facts) { f.DNC = "internal" }, at: noon, want: ReasonDNC},
		{name: "premium", mod: func(_ *Campaign, k *Contact, _ *Facts) { k.Phone = "+19002345678" }, at: noon, want: ReasonDestination},
		{name: "foreign", mod: func(_ *Campaign, k *Contact, _ *Facts) { k.Phone = "+442079460018" }, at: noon, want: ReasonDestination},
		{name: "foreign allowed", mod: func(c *Campaign, k *Contact, _ *Facts) {
			k.Phone, k.Zones, c.Countries = "+442079460018", []*time.Location{zone(t, "Europe/London")}, []string{"US", "GB"}
		}, at: noon, want: Allowed},
		{name: "retry later", mod: func(_ *Campaign, k *Contact, _ *Facts) { k.NextAt = later }, at: noon, want: ReasonNotDue, until: later},
		{name: "07:59 New York", at: time.Date(2026, 3, 10, 11, 59, 0, 0, time.UTC), want: ReasonWindow, until: time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)},
		{name: "any zone closed", mod: func(_ *Campaign, k *Contact, _ *Facts) { k.Zones = []*time.Location{ny, la} },
			at: time.Date(2026, 3, 10, 14, 30, 0, 0, time.UTC), want: ReasonWindow, until: time.Date(2026, 3, 10, 15, 0, 0, 0, time.UTC)},
		{name: "campaign window narrows", mod: func(c *Campaign, _ *Contact, _ *Facts) { c.Window = Window{13 * 60, 17 * 60} },
			at: noon, want: ReasonWindow, until: noon.Add(time.Hour)},
		{name: "weekday closed", mod: func(c *Campaign, _ *Contact, _ *Facts) { c.Weekdays = map[string]Window{"tue": {}} },
			at: noon, want: ReasonWindow, until: time.Date(2026, 3, 11, 12, 0, 0, 0, time.UTC)},
		{name: "daily cap", mod: func(_ *Campaign, _ *Contact, f *Facts) {
			f.Dials = []time.Time{noon.Add(-3 * time.Hour), noon.Add(-2 * time.Hour), noon.Add(-time.Hour)}
		}, at: noon, want: ReasonCap, until: noon.Add(21 * time.Hour)},
		{name: "weekly cap", mod: func(_ *Campaign, _ *Contact, f *Facts) {
			for d := 1; d <= 7; d++ {
				f.Dials = append(f.Dials, noon.Add(-time.Duration(d)*20*time.Hour))
			}
		}, at: noon, want: ReasonCap, until: noon.Add(-140*time.Hour + 7*24*time.Hour)},
		{name: "old dials do not count", mod: func(_ *Campaign, _ *Contact, f *Facts) {
			f.Dials = []time.Time{noon.Add(-25 * time.Hour), noon.Add(-26 * time.Hour), noon.Add(-27 * time.Hour)}
		}, at: noon, want: Allowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := running()
			k := Contact{Phone: "+12125550100", Zones: []*time.Location{ny}, State: ContactPending}
			var f Facts
			if tc.mod != nil {
				tc.mod(c, &k, &f)
			}
			v := Decide(c, k, f, DefaultCaps, tc.at)
			if v.Reason != tc.want || !v.Until.Equal(tc.until) {
				t.Errorf("got %q until %s (%s), want %q until %s", v.Reason, v.Until, v.Detail, tc.want, tc.until)
			}
		})
	}
}

func TestStateCallingHours(t *testing.T) {
	c := running()
	chi := zone(t, "America/Chicago")
	nyc := zone(t, "America/New_York")
	sunday := func(h, m int, z *time.Location) time.Time { return time.Date(2026, 3, 15, h, m, 0, 0, z) }
	for _, tc := range []struct {
		phone string
		at    time.Time
		z     *time.Location
		open  bool
	}{
		{"+12125550100", sunday(20, 30, nyc), nyc, true},  // federal: until 21:00
		{"+13055550100", sunday(20, 30, nyc), nyc, false}, // Florida: until 20:00
		{"+13055550100", sunday(19, 59, nyc), nyc, true},
		{"+12145550100", sunday(11, 0, chi), chi, false}, // Texas Sunday: from 12:00
		{"+12145550100", sunday(12, 0, chi), chi, true},
		{"+12145550100", sunday(12, 0, chi).AddDate(0, 0, 1).Add(-3 * time.Hour), chi, true}, // Monday 09:00
		{"+15045550100", sunday(12, 0, chi), chi, false},                                     // Louisiana: no Sunday calls
		{"+15045550100", sunday(12, 0, chi).AddDate(0, 0, 1), chi, true},
		{"+14165550100", sunday(18, 30, nyc), nyc, false}, // Canada weekends: 10:00-18:00
		{"+14165550100", sunday(17, 30, nyc), nyc, true},
	} {
		j := Jurisdiction(tc.phone)
		if got := Open(c, j, []*time.Location{tc.z}, tc.at); got != tc.open {
			t.Errorf("%s (%q) at %s: open %v, want %v", tc.phone, j, tc.at, got, tc.open)
		}
	}
}

func TestWindowValidation(t *testing.T) {
	for _, tc := range []struct {
		mod   func(*Campaign)
		field string
	}{
		{func(c *Campaign) { c.Window = Window{0, 1440} }, "window"},
		{func(c *Campaign) { c.Window = Window{21 * 60, 8 * 60} }, "window"},
		{func(c *Campaign) { c.Window = Window{9 * 60, 9 * 60} }, "window"},
		{func(c *Campaign) { c.Weekdays = map[string]Window{"sat": {7 * 60, 12 * 60}} }, "weekdays.sat"},
		{func(c *Campaign) { c.Weekdays = map[string]Window{"saturday": {9 * 60, 12 * 60}} }, "weekdays"},
		{func(c *Campaign) { c.Countries = []string{"XX"} }, "countries"},
		{func(c *Campaign) { c.AllowTypes = []string{"toll_free"} }, "allow_types"},
		{func(c *Campaign) { c.CallerID = "+1415555010" }, "caller_id"},
		{func(c *Campaign) { c.Weekdays = map[string]Window{"sun": {}, "sat": {10 * 60, 14 * 60}} }, ""},
	} {
		c := running()
		tc.mod(c)
		err := c.Validate()
		var fe *FieldError
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%+v: %v", c, err)
		case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field):
			t.Errorf("want a %s error, got %v", tc.field, err)
		}
	}
}

func TestNarrowZones(t *testing.T) {
	idaho := []string{"America/Boise", "America/Los_Angeles"}
	for _, tc := range []struct{ declared, want []string }{
		{nil, idaho},
		{[]string{"America/Boise"}, []string{"America/Boise"}},
		{[]string{"Pacific/Kiritimati"}, idaho}, // cannot widen
		{[]string{"Pacific/Kiritimati", "America/Los_Angeles"}, []string{"America/Los_Angeles"}},
	} {
		if got := NarrowZones(idaho, tc.declared); !slices.Equal(got, tc.want) {
			t.Errorf("declared %v: %v, want %v", tc.declared, got, tc.want)
		}
	}
}

func TestEmergencyAndTransferTargets(t *testing.T) {
	for _, s := range []string{"911", "112", "999", "000", "211", "411", "110", "119", "9-1-1", "sip:911@carrier"} {
		if TransferTarget(s) == "" {
			t.Errorf("transfer to %q allowed", s)
		}
	}
	for _, s := range []string{"+19002345678", "+449012345678", "+611900123456", "+881612345678"} {
		if why := TransferTarget(s); why == "" {
			t.Errorf("transfer to %q allowed", s)
		}
	}
	for _, s := range []string{"+14155550100", "+442079460018", "sip:agents@pbx.example.com", "+911234567890"} {
		if why := TransferTarget(s); why != "" {
			t.Errorf("transfer to %q refused: %s", s, why)
		}
	}
}

func TestSettle(t *testing.T) {
	c := running()
	for _, tc := range []struct {
		disp  string
		tags  map[string]string
		dnc   bool
		state string
	}{
		{Busy, nil, false, ContactPending},
		{Busy, nil, true, ContactDNC}, // put on the list while the call was live
		{CutOff, nil, true, ContactDNC},
		{CutOff, map[string]string{"result": "confirmed"}, false, ContactDone}, // hung up during the goodbye
		{CutOff, nil, false, ContactPending},
		{Answered, map[string]string{"dnc": "true"}, false, ContactDNC},
	} {
		if got, _ := Settle(c, tc.disp, 1, tc.tags, tc.dnc, noon); got != tc.state {
			t.Errorf("%s %v dnc=%v: %s, want %s", tc.disp, tc.tags, tc.dnc, got, tc.state)
		}
	}
}

func TestDestinationNames(t *testing.T) {
	c := running()
	for phone, want := range map[string]string{
		"+19002345678":  "premium-rate",
		"+15002345678":  "personal-number",
		"+442079460018": "GB",
		"+881612345678": "satellite",
	} {
		if got := Destination(c, phone); !strings.Contains(got, want) {
			t.Errorf("%s: %q, want it to name %q", phone, got, want)
		}
	}
	c.AllowTypes = []string{TypePremium}
	if got := Destination(c, "+19002345678"); got != "" {
		t.Errorf("premium allowed, still refused: %s", got)
	}
}
