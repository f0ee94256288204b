package campaign

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/nyaruka/phonenumbers"
)

// Caller ID: what number a contact is shown. In order:
//
//	the contact's own caller ID (a caller_id column in its dial list)
//	  ─► else a number of the campaign's pool with the contact's area code
//	     (local presence), the least used today among those under
//	     caller_id_daily_cap
//	  ─► else the campaign's caller_id

// Where a chosen caller ID came from.
const (
	CallerIDContact  = "contact"
	CallerIDPool     = "pool"
	CallerIDCampaign = "campaign"
)

// MaxCallerIDPool bounds a campaign's caller ID pool.
const MaxCallerIDPool = 1000

// CallerIDChoice is the caller ID an attempt shows, and why.
type CallerIDChoice struct {
	Number string `json:"caller_id"`
	Source string `json:"caller_id_source"` // CallerIDContact, CallerIDPool or CallerIDCampaign
	Area   string `json:"caller_id_area,omitempty"`
}

// ChooseCallerID picks the caller ID for a contact: its own (contactCID,
// already validated at import), else the least used pool number of its
// area code still under the campaign's daily cap (used says how often a
// number was used today), else the campaign's.
func ChooseCallerID(c *Campaign, contactCID, phone string, used func(number string) int) CallerIDChoice {
	return NewCallerIDPicker(c).Choose(contactCID, phone, used)
}

// CallerIDPicker is ChooseCallerID for many contacts of one campaign: its
// pool is indexed by area code once.
type CallerIDPicker struct {
	c      *Campaign
	byArea map[string][]string // area code → pool numbers, in pool order
}

// NewCallerIDPicker indexes the campaign's pool.
func NewCallerIDPicker(c *Campaign) *CallerIDPicker {
	p := &CallerIDPicker{c: c, byArea: map[string][]string{}}
	for _, n := range c.CallerIDPool {
		if a := AreaCode(n); a != "" {
			p.byArea[a] = append(p.byArea[a], n)
		}
	}
	return p
}

// Choose is ChooseCallerID.
func (p *CallerIDPicker) Choose(contactCID, phone string, used func(number string) int) CallerIDChoice {
	if contactCID != "" {
		return CallerIDChoice{Number: contactCID, Source: CallerIDContact}
	}
	if len(p.byArea) > 0 {
		if area := AreaCode(phone); area != "" {
			best, bestN := "", 0
			for _, n := range p.byArea[area] {
				u := used(n)
				if p.c.CallerIDDailyCap > 0 && u >= p.c.CallerIDDailyCap {
					continue
				}
				if best == "" || u < bestN {
					best, bestN = n, u
				}
			}
			if best != "" {
				return CallerIDChoice{Number: best, Source: CallerIDPool, Area: area}
			}
		}
	}
	return CallerIDChoice{Number: p.c.CallerID, Source: CallerIDCampaign}
}

// AreaCode is the geographic area code of an E.164 number with its
// country code ("+1212", "+4420"), "" when it has none (mobile and
// non-geographic numbers outside North America).
func AreaCode(e164 string) string {
	if len(e164) == 12 && strings.HasPrefix(e164, "+1") {
		return e164[:5] // NANP: every number has a three-digit area code
	}
	if v, ok := areaCodes.Load(e164); ok {
		return v.(string)
	}
	a := ""
	if num, err := phonenumbers.Parse(e164, ""); err == nil {
		if n := phonenumbers.GetLengthOfGeographicalAreaCode(num); n > 0 {
			a = fmt.Sprintf("+%d%s", num.GetCountryCode(), phonenumbers.GetNationalSignificantNumber(num)[:n])
		}
	}
	// Pool numbers are asked about at every lease: parse each once.
	if areaCodeCount.Load() < maxAreaCodes {
		if _, loaded := areaCodes.LoadOrStore(e164, a); !loaded {
			areaCodeCount.Add(1)
		}
	}
	return a
}

// areaCodes caches AreaCode outside North America, bounded.
var (
	areaCodes     sync.Map // E.164 → area code
	areaCodeCount atomic.Int64
)

const maxAreaCodes = 100_000

// NormaliseCallerIDIn is NormaliseCallerID for a number written without
// its country code in region ("US", "GB", ...).
func NormaliseCallerIDIn(s, region string) string {
	num, err := phonenumbers.Parse(s, region)
	if err != nil || !phonenumbers.IsValidNumber(num) || num.GetExtension() != "" {
		return ""
	}
	e := phonenumbers.Format(num, phonenumbers.E164)
	if Emergency(phonenumbers.GetNationalSignificantNumber(num)) {
		return ""
	}
	return e
}

// validateCallerIDs checks the caller ID pool and its cap.
func (c *Campaign) validateCallerIDs() error {
	if len(c.CallerIDPool) > MaxCallerIDPool {
		return &FieldError{"caller_id_pool", fmt.Sprintf("%d numbers: want at most %d", len(c.CallerIDPool), MaxCallerIDPool)}
	}
	seen := map[string]int{}
	for i, n := range c.CallerIDPool {
		field := fmt.Sprintf("caller_id_pool[%d]", i)
		if !callerIDRE.MatchString(n) || NormaliseCallerID(n) != n {
			return &FieldError{field, fmt.Sprintf("%q: must be a valid phone number in E.164 form such as +12125550100", n)}
		}
		if j, dup := seen[n]; dup {
			return &FieldError{field, fmt.Sprintf("%s is already caller_id_pool[%d]", n, j)}
		}
		seen[n] = i
	}
	if c.CallerIDDailyCap < 0 || c.CallerIDDailyCap > 1_000_000 {
		return &FieldError{"caller_id_daily_cap", fmt.Sprintf("%d: want 0 (no cap) to 1000000 calls per pool number per day", c.CallerIDDailyCap)}
	}
	return nil
}
