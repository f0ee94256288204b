package campaign

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nyaruka/phonenumbers"
)

// The rules engine: one pure answer to "may this contact be dialled now;
// if not, why, and until when". Leasing, the scaler's demand forecast and
// the trace simulator all ask it, so what is forecast is what is dialled.
//
//	campaign running? ─► started (start_at)? ─► contact pending, attempts left?
//	  ─► on no do-not-call list ─► destination allowed ─► retry due
//	  ─► legal hours ∩ campaign window open in every possible zone
//	  ─► under the frequency caps ─► dial

// Reason says why a contact may not be dialled now.
type Reason string

// Reasons, typed so callers branch on them, never on text.
const (
	Allowed           Reason = ""
	ReasonNotRunning  Reason = "campaign_not_running"
	ReasonNotStarted  Reason = "not_started"      // start_at is ahead
	ReasonFinal       Reason = "final"            // the contact's outcome is final (or it is live)
	ReasonExhausted   Reason = "attempts_used"    // max_attempts reached
	ReasonDNC         Reason = "do_not_call"      // on a do-not-call list
	ReasonDestination Reason = "destination"      // country, number type or emergency number refused
	ReasonNotDue      Reason = "retry_not_due"    // its next attempt is scheduled later
	ReasonWindow      Reason = "outside_window"   // legal hours or campaign window closed in a zone
	ReasonCap         Reason = "frequency_cap"    // the number was called too often lately
	ReasonNoZone      Reason = "no_possible_zone" // no zone known: never dialled
)

// Verdict is the engine's answer. Until is the earliest time the answer
// may change (zero: never by itself, e.g. a do-not-call number).
type Verdict struct {
	Reason Reason
	Until  time.Time
	Detail string
}

// OK reports whether the contact may be dialled now.
func (v Verdict) OK() bool { return v.Reason == Allowed }

// Contact is what the engine needs to know about one contact.
type Contact struct {
	Phone        string           // E.164
	Jurisdiction string           // Jurisdiction(Phone), kept with the contact
	Zones        []*time.Location // every zone the number may be in (NarrowZones)
	State        string
	Attempts     int // in its current round: since it was last recycled
	NextAt       time.Time
}

// Facts are what the store looked up for the decision.
type Facts struct {
	DNC   string      // the do-not-call list the number is on, "" if none
	Dials []time.Time // the number's attempts in every campaign within the last week
}

// Caps bound how often one number is called across all campaigns, over
// rolling windows of 24 hours and 7 days. 0 means no cap.
type Caps struct {
	PerDay  int `json:"per_day"`
	PerWeek int `json:"per_week"`
}

// DefaultCaps: at most 3 attempts per number per day and 7 per week (the
// limits of Florida's solicitation law and of the CFPB's Regulation F).
var DefaultCaps = Caps{PerDay: 3, PerWeek: 7}

// Decide is the rules engine.
func Decide(c *Campaign, k Contact, f Facts, caps Caps, now time.Time) Verdict {
	if v := Dialling(c, now); !v.OK() {
		return v
	}
	if k.State != ContactPending {
		return Verdict{Reason: ReasonFinal, Detail: "contact is " + k.State}
	}
	if k.Attempts >= c.MaxAttempts {
		return Verdict{Reason: ReasonExhausted, Detail: fmt.Sprintf("%d of %d attempts used", k.Attempts, c.MaxAttempts)}
	}
	if f.DNC != "" {
		return Verdict{Reason: ReasonDNC, Detail: "on the do-not-call list " + f.DNC}
	}
	if why := Destination(c, k.Phone); why != "" {
		return Verdict{Reason: ReasonDestination, Detail: why}
	}
	if len(k.Zones) == 0 {
		return Verdict{Reason: ReasonNoZone, Detail: "no time zone known for " + k.Phone}
	}
	if now.Before(k.NextAt) {
		return Verdict{Reason: ReasonNotDue, Until: k.NextAt, Detail: "next attempt at " + k.NextAt.UTC().Format(time.RFC3339)}
	}
	if !Open(c, k.Jurisdiction, k.Zones, now) {
		return Verdict{Reason: ReasonWindow, Until: NextOpen(c, k.Jurisdiction, k.Zones, now), Detail: "calling window closed in one of " + zoneNames(k.Zones)}
	}
	if until, why := capped(caps, f.Dials, now); why != "" {
		return Verdict{Reason: ReasonCap, Until: until, Detail: why}
	}
	return Verdict{}
}

// Dialling is the campaign's part of Decide: whether it dials at all now.
func Dialling(c *Campaign, now time.Time) Verdict {
	if c.Status != StatusRunning && (c.Status != StatusScheduled || c.StartAt == nil) {
		return Verdict{Reason: ReasonNotRunning, Detail: "campaign is " + c.Status}
	}
	if c.StartAt != nil && now.Before(*c.StartAt) {
		return Verdict{Reason: ReasonNotStarted, Until: *c.StartAt, Detail: "campaign starts at " + c.StartAt.UTC().Format(time.RFC3339)}
	}
	return Verdict{}
}

func capped(caps Caps, dials []time.Time, now time.Time) (time.Time, string) {
	check := func(n int, span time.Duration, what string) (time.Time, string) {
		if n <= 0 {
			return time.Time{}, ""
		}
		var in []time.Time
		for _, d := range dials {
			if d.After(now.Add(-span)) && !d.After(now) {
				in = append(in, d)
			}
		}
		if len(in) < n {
			return time.Time{}, ""
		}
		slices.SortFunc(in, func(a, b time.Time) int { return a.Compare(b) })
		// Free again once enough of them have left the window.
		return in[len(in)-n].Add(span), fmt.Sprintf("called %d times in the last %s (cap %d)", len(in), what, n)
	}
	if u, why := check(caps.PerWeek, 7*24*time.Hour, "7 days"); why != "" {
		return u, why
	}
	return check(caps.PerDay, 24*time.Hour, "24 hours")
}

// Open reports whether a contact with these zones may be called at t: in
// every zone, t falls within the jurisdiction's legal hours and the
// campaign's window for that local weekday.
func Open(c *Campaign, jurisdiction string, zones []*time.Location, t time.Time) bool {
	legal := Legal(jurisdiction)
	for _, z := range zones {
		local := t.In(z)
		w := c.WindowOn(local.Weekday())
		if w == (Window{}) || !w.Open(local) || !legal.open(local) {
			return false
		}
	}
	return len(zones) > 0
}

// NextOpen is the first minute after t at which Open holds, looking up to
// eight days ahead; zero if the windows never open.
func NextOpen(c *Campaign, jurisdiction string, zones []*time.Location, t time.Time) time.Time {
	m := t.Truncate(time.Minute).Add(time.Minute)
	for end := t.Add(8 * 24 * time.Hour); m.Before(end); m = m.Add(time.Minute) {
		if Open(c, jurisdiction, zones, m) {
			return m
		}
	}
	return time.Time{}
}

func zoneNames(zs []*time.Location) string {
	n := make([]string, len(zs))
	for i, z := range zs {
		n[i] = z.String()
	}
	return strings.Join(n, ", ")
}

// weekdays are the keys of Campaign.Weekdays.
var weekdays = [7]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// WindowOn is the campaign's window on a local weekday: its Weekdays entry
// if there is one (a zero window closes the day), else Window.
func (c *Campaign) WindowOn(d time.Weekday) Window {
	if w, ok := c.Weekdays[weekdays[d]]; ok {
		return w
	}
	return c.Window
}

// NarrowZones is the contact's zones: the zones the number may be in, as
// narrowed by the zones a dial list declares. A declaration narrows, never
// widens: declared zones the number cannot be in are ignored, and if none
// is left the number's own zones stand.
func NarrowZones(possible, declared []string) []string {
	var both []string
	for _, z := range declared {
		if slices.Contains(possible, z) && !slices.Contains(both, z) {
			both = append(both, z)
		}
	}
	if len(both) == 0 {
		return possible
	}
	return both
}

// Number types refused unless a campaign allows them in AllowTypes.
const (
	TypePremium   = "premium_rate"
	TypeShared    = "shared_cost"
	TypeSatellite = "satellite"
	TypePersonal  = "personal_number"
)

var restrictedTypes = []string{TypePremium, TypeShared, TypeSatellite, TypePersonal}

// satellite country codes: Inmarsat (870), the Global Mobile Satellite
// System (881) and the international networks carrying Thuraya and others
// (882, 883).
var satellite = []string{"+870", "+881", "+882", "+883"}

// numberType names the restricted type of an E.164 number, "" if none.
func numberType(e164 string, num *phonenumbers.PhoneNumber) string {
	for _, p := range satellite {
		if strings.HasPrefix(e164, p) {
			return TypeSatellite
		}
	}
	switch phonenumbers.GetNumberType(num) {
	case phonenumbers.PREMIUM_RATE:
		return TypePremium
	case phonenumbers.SHARED_COST:
		return TypeShared
	case phonenumbers.PERSONAL_NUMBER:
		return TypePersonal
	}
	return ""
}

// region is the ISO country of an E.164 number, "" if unknown.
func region(e164 string) string { return classify(e164).region }

// destClass is what the destination rules need of a number.
type destClass struct {
	bad       bool // not an E.164 number
	region    string
	typ       string // restricted type, "" if none
	emergency bool
}

// nanpClasses caches the class of North American numbers by "+1" and the
// first six digits (area code and exchange): libphonenumber decides a
// valid NANP number's country and type on those digits, and parsing each
// number again at every lease costs more than the rest of leasing. Bounded:
// past maxNANPClasses prefixes, numbers are classified uncached.
var (
	nanpClasses    sync.Map // string → destClass
	nanpClassCount atomic.Int64
)

const maxNANPClasses = 200_000

func classify(e164 string) destClass {
	key := ""
	if len(e164) == 12 && strings.HasPrefix(e164, "+1") {
		key = e164[:8]
		if v, ok := nanpClasses.Load(key); ok {
			return v.(destClass)
		}
	}
	num, err := phonenumbers.Parse(e164, "")
	if err != nil || !strings.HasPrefix(e164, "+") {
		return destClass{bad: true}
	}
	reg := phonenumbers.GetRegionCodeForNumber(num)
	nsn := phonenumbers.GetNationalSignificantNumber(num)
	d := destClass{region: reg, typ: numberType(e164, num), emergency: Emergency(nsn) || (reg != "" && phonenumbers.IsEmergencyNumber(nsn, reg))}
	if key != "" && nanpClassCount.Load() < maxNANPClasses {
		if _, loaded := nanpClasses.LoadOrStore(key, d); !loaded {
			nanpClassCount.Add(1)
		}
	}
	return d
}

// AllowedCountries is where the campaign may call: its Countries (set
// from its first dial list's region unless given), else the country of its
// caller ID.
func (c *Campaign) AllowedCountries() []string {
	if len(c.Countries) > 0 {
		return c.Countries
	}
	if r := region(c.CallerID); r != "" {
		return []string{r}
	}
	return nil
}

// Destination says why a campaign may not call an E.164 number ("" if it
// may): an emergency or N11 number, a country outside the campaign's, or a
// premium-rate, shared-cost, satellite or personal number it does not
// allow.
func Destination(c *Campaign, e164 string) string {
	d := classify(e164)
	if d.bad {
		return fmt.Sprintf("%q is not an E.164 number", e164)
	}
	if d.emergency {
		return "an emergency or N11 service number"
	}
	reg, t := d.region, d.typ
	if t != "" && !slices.Contains(c.AllowTypes, t) {
		return fmt.Sprintf("a %s number; refused unless allow_types includes %s", strings.ReplaceAll(t, "_", "-"), t)
	}
	if t == TypeSatellite {
		return "" // allowed, and in no country
	}
	if allowed := c.AllowedCountries(); !slices.Contains(allowed, reg) {
		if reg == "" || reg == "001" {
			reg = "no country"
		}
		return fmt.Sprintf("a number in %s; this campaign calls only %s (set countries to allow more)", reg, strings.Join(allowed, ", "))
	}
	return ""
}

// emergencyRE matches the emergency and N11 service numbers of the main
// numbering plans: NANP N11 (211 … 911), 112, 999, 000 (Australia), 110,
// 119, 118 (Japan, Germany, Italy), 100-102 (India), 15, 17, 18 (France),
// 111 (New Zealand), 933 (US 911 test).
var emergencyRE = regexp.MustCompile(`^(?:[2-9]11|112|999|000|110|119|118|100|101|102|15|17|18|933)$`)

// Emergency reports whether a dialled string (digits, optionally with
// spaces or dashes, no "+") is an emergency or N11 service number, in any
// region libphonenumber knows.
func Emergency(s string) bool {
	if strings.HasPrefix(strings.TrimSpace(s), "+") {
		return false // international format: a country code follows
	}
	d := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		if r == ' ' || r == '-' || r == '(' || r == ')' || r == '.' {
			return -1
		}
		return 'x'
	}, s)
	if d == "" || strings.Contains(d, "x") {
		return false
	}
	if emergencyRE.MatchString(d) {
		return true
	}
	if len(d) > 6 {
		return false // no emergency number is this long
	}
	for r := range phonenumbers.GetSupportedRegions() {
		if phonenumbers.IsEmergencyNumber(d, r) {
			return true
		}
	}
	return false
}

// TransferTarget refuses flow transfer targets that must never be called:
// emergency and N11 numbers, and premium-rate, shared-cost, satellite or
// personal numbers. "" if the target is allowed.
func TransferTarget(to string) string {
	if strings.HasPrefix(to, "sip:") {
		user, _, _ := strings.Cut(strings.TrimPrefix(to, "sip:"), "@")
		if Emergency(user) {
			return fmt.Sprintf("%q is an emergency or N11 service number", to)
		}
		return ""
	}
	if Emergency(to) {
		return fmt.Sprintf("%q is an emergency or N11 service number", to)
	}
	if strings.HasPrefix(to, "+") {
		num, err := phonenumbers.Parse(to, "")
		if err == nil {
			if t := numberType(to, num); t != "" {
				return fmt.Sprintf("%q is a %s number", to, strings.ReplaceAll(t, "_", "-"))
			}
		}
	}
	return ""
}

// Settle decides what follows an attempt: the contact's new state and,
// when it is to be retried, when. A number on a do-not-call list (dnc, as
// checked when the result arrived) is never put back to pending; a result
// the flow captured (the "result" tag) is final whatever the hang-up.
func Settle(c *Campaign, disposition string, attempts int, tags map[string]string, dnc bool, now time.Time) (state string, nextAt time.Time) {
	if tags["dnc"] == "true" || dnc {
		return ContactDNC, time.Time{}
	}
	if tags["result"] != "" {
		return ContactDone, time.Time{}
	}
	return Next(c, disposition, attempts, tags, now)
}

// NormaliseCallerID returns a caller ID in E.164 form ("" if it is not a
// valid number). Numbers written without a country code are read as
// North American.
func NormaliseCallerID(s string) string {
	num, err := phonenumbers.Parse(s, "US")
	if err != nil || !phonenumbers.IsValidNumber(num) || num.GetExtension() != "" {
		return ""
	}
	return phonenumbers.Format(num, phonenumbers.E164)
}

// KnownRegion reports whether r is an ISO 3166 region libphonenumber
// knows.
func KnownRegion(r string) bool { return phonenumbers.GetCountryCodeForRegion(r) != 0 }

// validateRules checks the campaign's calling windows, countries and
// allowed number types.
func (c *Campaign) validateRules() error {
	if err := checkWindow("window", c.Window); err != nil {
		return err
	}
	for k, w := range c.Weekdays {
		if !slices.Contains(weekdays[:], k) {
			return &FieldError{"weekdays", fmt.Sprintf("%q: want mon, tue, wed, thu, fri, sat or sun", k)}
		}
		if err := checkWindow("weekdays."+k, w); err != nil {
			return err
		}
	}
	for _, r := range c.Countries {
		if phonenumbers.GetCountryCodeForRegion(r) == 0 {
			return &FieldError{"countries", fmt.Sprintf("%q: want ISO 3166 country codes such as US, CA, GB", r)}
		}
	}
	for _, t := range c.AllowTypes {
		if !slices.Contains(restrictedTypes, t) {
			return &FieldError{"allow_types", fmt.Sprintf("%q: want %s", t, strings.Join(restrictedTypes, ", "))}
		}
	}
	return nil
}
