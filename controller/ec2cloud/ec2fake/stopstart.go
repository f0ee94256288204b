package ec2fake

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// stateChange is one item of a Stop/Start/TerminateInstances answer.
type stateChange struct {
	InstanceID string `xml:"instanceId"`
	Current    xState `xml:"currentState"`
	Previous   xState `xml:"previousState"`
}

// stateChanges answers a Stop, Start or TerminateInstances call.
type stateChanges struct {
	XMLName   xml.Name      // the call's response element
	Xmlns     string        `xml:"xmlns,attr"`
	RequestID string        `xml:"requestId"`
	Changes   []stateChange `xml:"instancesSet>item"`
}

// changeStates applies change to each instance, given its state before,
// and answers with each one's state before and after, under the response
// element name.
func (s *Server) changeStates(name string, ids []string, change func(in *instance, prev string, now time.Time)) stateChanges {
	now := s.now()
	out := stateChanges{XMLName: xml.Name{Local: name}, Xmlns: xmlns, RequestID: "fake-request"}
	for _, id := range ids {
		in := s.instances[id]
		prev := in.state(now)
		change(in, prev, now)
		cur := in.state(now)
		out.Changes = append(out.Changes, stateChange{id, xState{stateCodes[cur], cur}, xState{stateCodes[prev], prev}})
	}
	return out
}

// knownIDs checks ids as EC2 does: all or nothing.
func (s *Server) knownIDs(ids []string) *Fault {
	if len(ids) == 0 {
		return &Fault{http.StatusBadRequest, "MissingParameter", "The request must contain the parameter InstanceId"}
	}
	if len(ids) > 1000 {
		return badParam("too many instance ids: %d > 1000", len(ids))
	}
	now := s.now()
	var missing []string
	for _, id := range ids {
		if in, ok := s.instances[id]; !ok || now.Before(in.visibleAt) {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return &Fault{http.StatusBadRequest, "InvalidInstanceID.NotFound",
			fmt.Sprintf("The instance IDs '%s' do not exist", strings.Join(missing, ", "))}
	}
	return nil
}

// stopInstances stops (or hibernates) running instances. Stopping a
// stopped or stopping one changes nothing; a terminated one, a one-time
// spot instance, or hibernating one launched without hibernation fails
// the whole call, as EC2 does.
func (s *Server) stopInstances(p url.Values) (any, *Fault) {
	ids := list(p, "InstanceId")
	if f := s.knownIDs(ids); f != nil {
		return nil, f
	}
	now := s.now()
	hibernate := p.Get("Hibernate") == "true"
	for _, id := range ids {
		in := s.instances[id]
		switch st := in.state(now); {
		case st == "shutting-down" || st == "terminated":
			return nil, &Fault{http.StatusBadRequest, "IncorrectInstanceState", fmt.Sprintf("The instance '%s' is not in a state from which it can be stopped.", id)}
		case in.spot:
			return nil, &Fault{http.StatusBadRequest, "UnsupportedOperation", fmt.Sprintf("The instance '%s' is a spot instance with a one-time request and cannot be stopped.", id)}
		case hibernate && !in.hibernation:
			return nil, &Fault{http.StatusBadRequest, "UnsupportedHibernationConfiguration", fmt.Sprintf("The instance '%s' does not have hibernation configured.", id)}
		}
	}
	return s.changeStates("StopInstancesResponse", ids, func(in *instance, prev string, now time.Time) {
		if prev == "running" || prev == "pending" {
			in.parkAt, in.hibernated = now, hibernate
			in.parkLag = s.StopDelay
			if hibernate && s.HibernateDelay > 0 {
				in.parkLag = s.HibernateDelay
			}
		}
	}), nil
}

// startInstances starts stopped instances. Starting a pending or running
// one changes nothing; a stopping or terminated one fails the call; no
// capacity for the instance's type or zone (NoCapacity) fails it with
// InsufficientInstanceCapacity, as a start on EC2 can.
func (s *Server) startInstances(p url.Values) (any, *Fault) {
	ids := list(p, "InstanceId")
	if f := s.knownIDs(ids); f != nil {
		return nil, f
	}
	now := s.now()
	for _, id := range ids {
		in := s.instances[id]
		st := in.state(now)
		if st == "stopping" || st == "shutting-down" || st == "terminated" {
			return nil, &Fault{http.StatusBadRequest, "IncorrectInstanceState", fmt.Sprintf("The instance '%s' is not in a state from which it can be started.", id)}
		}
		if st != "stopped" {
			continue
		}
		for _, k := range []string{in.subnet, in.zone, in.typ, in.typ + "/" + in.zone} {
			if k != "" && s.noCapacity[k] {
				return nil, &Fault{http.StatusInternalServerError, "InsufficientInstanceCapacity",
					fmt.Sprintf("We currently do not have sufficient %s capacity in the Availability Zone you requested (%s).", in.typ, in.zone)}
			}
		}
	}
	return s.changeStates("StartInstancesResponse", ids, func(in *instance, prev string, now time.Time) {
		if prev == "stopped" {
			in.resumeAt, in.startLag = now, s.StartDelay
			in.starts++
		}
	}), nil
}
