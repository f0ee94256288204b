package agent

import "github.com/elastidial/elastidial/nodeapi"

// OriginateResponse Reasons (Asterisk's AST_CONTROL_* values).
const (
	reasonFailed     = 0 // chan_pjsip: every rejected call; the cause is in the Hangup event
	reasonHangup     = 1 // AST_CONTROL_HANGUP: the channel went away while dialling
	reasonRingTimout = 3 // AST_CONTROL_RINGING: rang (or sent early media) until Timeout
	reasonAnswered   = 4 // AST_CONTROL_ANSWER
	reasonBusy       = 5 // AST_CONTROL_BUSY: only channel drivers that send the frame
	reasonCongestion = 8 // AST_CONTROL_CONGESTION: likewise
)

// causeDisposition maps the Q.850 cause of an unanswered channel's Hangup
// to a disposition (chan_pjsip maps SIP 486 → 17, 480/408 → 18/19,
// 503 → 34, 404 → 1, 603 → 21).
func causeDisposition(cause int) string {
	switch cause {
	case 17: // user busy
		return nodeapi.DispBusy
	case 18, 19: // no user responding, no answer
		return nodeapi.DispNoAnswer
	case 34, 38, 41, 42: // no circuit, network out of order, temporary failure, switch congestion
		return nodeapi.DispCongestion
	case 1, 3, 28: // unallocated number, no route to destination, invalid number format
		return nodeapi.DispInvalidNumber
	case 21: // call rejected
		return nodeapi.DispRejected
	}
	return nodeapi.DispFailed
}

// unansweredDisposition decides an unanswered call from its
// OriginateResponse Reason and, when known, its channel's Hangup cause.
// settled is false when the Reason says nothing and no cause is known yet:
// the caller waits (boundedly) for the Hangup event, then settles for
// failed.
func unansweredDisposition(reason, cause int, causeKnown bool) (disp string, settled bool) {
	switch reason {
	case reasonRingTimout:
		return nodeapi.DispNoAnswer, true
	case reasonBusy:
		return nodeapi.DispBusy, true
	case reasonCongestion:
		return nodeapi.DispCongestion, true
	}
	if !causeKnown {
		return nodeapi.DispFailed, false
	}
	return causeDisposition(cause), true
}

// congestionCause reports whether a Q.850 cause says the carrier or the
// network is congested (34 no circuit, 38 network out of order, 41
// temporary failure, 42 switching equipment congestion, 44 channel
// unavailable, 47 resource unavailable; SIP 503 arrives as 34): such a
// call, never answered, goes again at once on the next trunk of its
// group. The controller checks the same list (campaign.CongestionCause).
func congestionCause(cause int) bool {
	switch cause {
	case 34, 38, 41, 42, 44, 47:
		return true
	}
	return false
}
