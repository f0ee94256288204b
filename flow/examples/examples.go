// Package examples holds the example flows used in tests and docs: a
// press-1 survey and an appointment reminder with confirm, cancel and
// opt-out.
package examples

import _ "embed"

// Survey is a press-1 survey with answering-machine detection; it asks
// by name ({{first_name}}) through the speech engine, falling back to a
// recorded question when speech fails.
//
//go:embed survey.json
var Survey []byte

// Reminder greets the contact by name and says the appointment date
// ({{first_name}}, {{appointment_date}} as 2026-03-14), then asks "press 1
// to confirm, 2 to cancel, 9 to opt out".
//
//go:embed reminder.json
var Reminder []byte
