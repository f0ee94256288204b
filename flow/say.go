package flow

import (
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/elastidial/elastidial/nodeapi"
)

// SAY DATETIME formats (Asterisk's say.c, English): A weekday, B month,
// d day of the month, Y year, I hour on the 12-hour clock, M minutes,
// p a.m./p.m.; a quoted name plays that stock sound.
const (
	FormatDate     = "ABdY"
	FormatTime     = "IMp"
	FormatDateTime = "ABdY 'digits/at' IMp"
)

// dateLayouts are the contact-field forms a date or time is read from.
// A time without a zone is said as written; one with a zone is said in
// its own zone's wall time.
var dateLayouts = []string{
	time.RFC3339, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02 15:04",
	"2006-01-02", "15:04:05", "15:04",
}

// ParseWhen reads a date, a time or both from a contact field.
func ParseWhen(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			if t.Year() == 0 { // a time of day alone
				t = t.AddDate(1970, 0, 0)
			}
			// The wall time as written, said in UTC: no zone moves it.
			return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, time.UTC), true
		}
	}
	return time.Time{}, false
}

// say renders a say state's action. A value it cannot say (a date that
// is not one, a number with letters) becomes an empty text: the node
// fails the step, and the flow's failed branch runs.
func say(as, text string) nodeapi.Action {
	switch as {
	case SayDigits:
		return nodeapi.Action{Kind: nodeapi.ActionSayDigits, Text: digitsOnly(text)}
	case SayNumber:
		return nodeapi.Action{Kind: nodeapi.ActionSayNumber, Text: integer(text)}
	case SayAlpha:
		return nodeapi.Action{Kind: nodeapi.ActionSayAlpha, Text: alpha(text)}
	case SayDate, SayTime, SayDateTime:
		a := nodeapi.Action{Kind: nodeapi.ActionSayDateTime, Format: map[string]string{SayDate: FormatDate, SayTime: FormatTime, SayDateTime: FormatDateTime}[as]}
		if t, ok := ParseWhen(text); ok {
			a.Text = strconv.FormatInt(t.Unix(), 10)
		}
		return a
	case SayMoney:
		return nodeapi.Action{Kind: nodeapi.ActionSayMoney, Text: money(text)}
	default:
		return nodeapi.Action{Kind: nodeapi.ActionSpeak, Text: speechText(text)}
	}
}

// speechText collapses white space and drops control characters.
func speechText(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// integer reads a whole number such as "1,234" or "-7" for SAY NUMBER,
// which takes a 32-bit integer; anything else is "".
func integer(s string) string {
	s = strings.NewReplacer(",", "", " ", "", "_", "").Replace(strings.TrimSpace(s))
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return ""
	}
	return strconv.FormatInt(n, 10)
}

// money reads an amount such as "$1,234.5" into "1234.50"; anything else
// is "".
func money(s string) string {
	s = strings.NewReplacer(",", "", " ", "", "$", "").Replace(strings.TrimSpace(s))
	units, cents, frac := strings.Cut(s, ".")
	if !isDigits(units) || len(units) > 9 || frac && (len(cents) < 1 || len(cents) > 2 || !isDigits(cents)) {
		return ""
	}
	if len(cents) == 1 {
		cents += "0"
	}
	if cents == "" {
		cents = "00"
	}
	u, _ := strconv.Atoi(units)
	return strconv.Itoa(u) + "." + cents
}

// alpha keeps what SAY ALPHA has stock sounds for: letters, digits and
// a few signs of e-mail addresses and codes.
func alpha(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		case strings.ContainsRune("@.-_+/ ", r):
			return r
		}
		return -1
	}, strings.TrimSpace(s))
}
