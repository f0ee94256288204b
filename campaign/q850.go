package campaign

import "strconv"

// q850 names the ITU-T Q.850 release causes a call can end with, in
// Asterisk's wording (main/causes.h); the rest fall back to their number.
var q850 = map[int]string{
	1: "Unallocated (unassigned) number", 2: "No route to specified transit network", 3: "No route to destination",
	6: "Channel unacceptable", 7: "Call awarded and being delivered", 16: "Normal call clearing", 17: "User busy",
	18: "No user responding", 19: "No answer from user (user alerted)", 20: "Subscriber absent", 21: "Call rejected",
	22: "Number changed", 23: "Redirected to new destination", 26: "Non-selected user clearing", 27: "Destination out of order",
	28: "Invalid number format (address incomplete)", 29: "Facility rejected", 30: "Response to STATUS ENQUIRY",
	31: "Normal, unspecified", 34: "No circuit/channel available", 38: "Network out of order",
	41: "Temporary failure", 42: "Switching equipment congestion", 43: "Access information discarded",
	44: "Requested circuit/channel not available", 50: "Requested facility not subscribed", 52: "Outgoing call barred",
	54: "Incoming call barred", 57: "Bearer capability not authorized", 58: "Bearer capability not presently available",
	65: "Bearer capability not implemented", 66: "Channel type not implemented", 69: "Requested facility not implemented",
	81: "Invalid call reference value", 88: "Incompatible destination", 95: "Invalid message, unspecified",
	96: "Mandatory information element is missing", 97: "Message type non-existent or not implemented",
	98: "Message not compatible with call state", 99: "Information element non-existent or not implemented",
	100: "Invalid information element contents", 101: "Message not compatible with call state",
	102: "Recovery on timer expiry", 103: "Parameter non-existent or not implemented - passed on",
	111: "Protocol error, unspecified", 127: "Interworking, unspecified",
}

// CauseText names a Q.850 cause code: "" for 0 (none reported), the
// standard's wording for a known code, "cause N" otherwise.
func CauseText(code int) string {
	if code == 0 {
		return ""
	}
	if s, ok := q850[code]; ok {
		return s
	}
	return "cause " + strconv.Itoa(code)
}
