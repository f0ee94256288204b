// Package examples holds the example flows used in tests and docs: a
// press-1 survey and an appointment reminder with confirm, cancel and
// opt-out.
package examples

import _ "embed"

// Survey is a press-1 survey with answering-machine detection.
//
//go:embed survey.json
var Survey []byte

// Reminder is "press 1 to confirm, 2 to cancel, 9 to opt out".
//
//go:embed reminder.json
var Reminder []byte
