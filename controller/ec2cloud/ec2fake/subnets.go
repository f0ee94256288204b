package ec2fake

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"sort"
)

// describeSubnets answers with the zone of each subnet asked for (all of
// SubnetZones when none is named); an unknown subnet fails the call as
// EC2's does. With no SubnetZones, every subnet is in us-east-1a.
func (s *Server) describeSubnets(p url.Values) (any, *Fault) {
	ids := list(p, "SubnetId")
	if len(ids) == 0 {
		for id := range s.SubnetZones {
			ids = append(ids, id)
		}
		sort.Strings(ids)
	}
	type item struct {
		SubnetID         string `xml:"subnetId"`
		AvailabilityZone string `xml:"availabilityZone"`
		State            string `xml:"state"`
	}
	type resp struct {
		XMLName   xml.Name `xml:"DescribeSubnetsResponse"`
		Xmlns     string   `xml:"xmlns,attr"`
		RequestID string   `xml:"requestId"`
		Items     []item   `xml:"subnetSet>item"`
	}
	out := resp{Xmlns: xmlns, RequestID: "fake-request"}
	for _, id := range ids {
		z, ok := s.SubnetZones[id]
		if len(s.SubnetZones) == 0 {
			z, ok = "us-east-1a", true // any subnet, as RunInstances takes it
		}
		if !ok {
			return nil, &Fault{http.StatusBadRequest, "InvalidSubnetID.NotFound", fmt.Sprintf("The subnet ID '%s' does not exist", id)}
		}
		out.Items = append(out.Items, item{id, z, "available"})
	}
	return out, nil
}
