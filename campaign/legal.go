package campaign

import (
	"fmt"
	"strings"
	"time"
)

// LegalHours are the hours a jurisdiction allows calls in, per weekday, in
// the called person's local time. A zero Window closes the day.
type LegalHours struct {
	Days [7]Window // indexed by time.Weekday
	Rule string    // the law, named in errors and compliance records
}

// open reports whether local time t is within the legal hours.
func (l LegalHours) open(t time.Time) bool {
	w := l.Days[t.Weekday()]
	return w != (Window{}) && w.Open(t)
}

func everyDay(w Window) (d [7]Window) {
	for i := range d {
		d[i] = w
	}
	return d
}

// Federal is the US federal rule (TCPA, 47 CFR 64.1200(c)(1)): no calls
// before 08:00 or after 21:00 at the called party's location. It is also
// the default for every jurisdiction not in Jurisdictions, and a campaign's
// own window must lie inside it.
var Federal = LegalHours{Days: everyDay(Window{8 * 60, 21 * 60}), Rule: "US federal calling hours, 08:00-21:00 local (47 CFR 64.1200(c)(1))"}

// Jurisdictions holds the calling-hour laws stricter than Federal, keyed
// by the code Jurisdiction returns. Only rules known reliably are here;
// holidays are not modelled.
var Jurisdictions = map[string]LegalHours{
	"US-FL": {Days: everyDay(Window{8 * 60, 20 * 60}), Rule: "Florida Telephone Solicitation Act, 08:00-20:00 local (Fla. Stat. 501.616(6))"},
	"US-OK": {Days: everyDay(Window{8 * 60, 20 * 60}), Rule: "Oklahoma Telephone Solicitation Act, 08:00-20:00 local"},
	"US-MD": {Days: everyDay(Window{8 * 60, 20 * 60}), Rule: "Maryland Stop the Spam Calls Act, 08:00-20:00 local"},
	"US-WA": {Days: everyDay(Window{8 * 60, 20 * 60}), Rule: "Washington, 08:00-20:00 local (RCW 80.36.390)"},
	"US-LA": {Days: [7]Window{time.Sunday: {}, time.Monday: {8 * 60, 20 * 60}, time.Tuesday: {8 * 60, 20 * 60}, time.Wednesday: {8 * 60, 20 * 60},
		time.Thursday: {8 * 60, 20 * 60}, time.Friday: {8 * 60, 20 * 60}, time.Saturday: {8 * 60, 20 * 60}},
		Rule: "Louisiana telephone solicitation law, 08:00-20:00 local, never on Sunday"},
	"US-TX": {Days: [7]Window{time.Sunday: {12 * 60, 21 * 60}, time.Monday: {9 * 60, 21 * 60}, time.Tuesday: {9 * 60, 21 * 60}, time.Wednesday: {9 * 60, 21 * 60},
		time.Thursday: {9 * 60, 21 * 60}, time.Friday: {9 * 60, 21 * 60}, time.Saturday: {9 * 60, 21 * 60}},
		Rule: "Texas, 09:00-21:00 local, Sunday 12:00-21:00 (Tex. Bus. & Com. Code 301.051)"},
	"CA": {Days: [7]Window{time.Sunday: {10 * 60, 18 * 60}, time.Monday: {9 * 60, 21*60 + 30}, time.Tuesday: {9 * 60, 21*60 + 30}, time.Wednesday: {9 * 60, 21*60 + 30},
		time.Thursday: {9 * 60, 21*60 + 30}, time.Friday: {9 * 60, 21*60 + 30}, time.Saturday: {10 * 60, 18 * 60}},
		Rule: "CRTC Unsolicited Telecommunications Rules, 09:00-21:30 weekdays, 10:00-18:00 weekends"},
}

// stateAreaCodes maps US area codes to the states in Jurisdictions. An
// area code says where a number was issued, not where its holder is; the
// zones of a number cover the same uncertainty for hours.
var stateAreaCodes = map[string]string{}

func init() {
	for st, codes := range map[string]string{
		"US-FL": "239 305 321 324 352 386 407 448 561 645 656 689 727 754 772 786 813 850 863 904 941 954",
		"US-OK": "405 539 572 580 918",
		"US-MD": "227 240 301 410 443 667",
		"US-WA": "206 253 360 425 509 564",
		"US-LA": "225 318 337 504 985",
		"US-TX": "210 214 254 281 325 346 361 409 430 432 469 512 682 713 726 737 806 817 830 832 903 915 936 940 945 956 972 979",
	} {
		for _, c := range strings.Fields(codes) {
			stateAreaCodes[c] = st
		}
	}
}

// Jurisdiction names the calling-hours jurisdiction of an E.164 number:
// "US-FL" and the like for US states with stricter laws, "CA" for Canada,
// "" for the federal default.
func Jurisdiction(e164 string) string {
	if !strings.HasPrefix(e164, "+1") || len(e164) != 12 {
		return ""
	}
	if st, ok := stateAreaCodes[e164[2:5]]; ok {
		return st
	}
	if region(e164) == "CA" {
		return "CA"
	}
	return ""
}

// Legal returns the calling hours of a jurisdiction.
func Legal(jurisdiction string) LegalHours {
	if l, ok := Jurisdictions[jurisdiction]; ok {
		return l
	}
	return Federal
}

// checkWindow refuses a campaign window that is not inside the federal
// legal hours.
func checkWindow(field string, w Window) error {
	if w == (Window{}) {
		return nil // a closed day
	}
	fed := Federal.Days[time.Monday]
	switch {
	case w.Start < 0 || w.Start >= 1440 || w.End < 0 || w.End > 1440 || w.Start == w.End:
		return &FieldError{field, "start and end are minutes of the day, 0 to 1440, and must differ"}
	case w.Start > w.End:
		return &FieldError{field, fmt.Sprintf("%s-%s wraps past midnight, outside the legal hours: %s", hhmm(w.Start), hhmm(w.End), Federal.Rule)}
	case w.Start < fed.Start || w.End > fed.End:
		return &FieldError{field, fmt.Sprintf("%s-%s is outside the legal hours: %s; a campaign window may only narrow them", hhmm(w.Start), hhmm(w.End), Federal.Rule)}
	}
	return nil
}

func hhmm(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }
