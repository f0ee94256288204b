package ec2fake

import (
	"encoding/xml"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// spotPrice is one entry of the spot price history.
type spotPrice struct {
	typ, zone, product string
	price              float64
	at                 time.Time
}

// SetSpotPrice records that the spot price of instanceType in zone is
// price $/h from now on (Linux/UNIX), as DescribeSpotPriceHistory will
// report it.
func (s *Server) SetSpotPrice(instanceType, zone string, price float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	s.spot = append(s.spot, spotPrice{typ: instanceType, zone: zone, product: "Linux/UNIX", price: price, at: s.now()})
}

// describeSpotPriceHistory answers like EC2: newest first; with StartTime,
// the price in effect at StartTime in each zone and every later change;
// filtered by instance type and product description; paginated.
func (s *Server) describeSpotPriceHistory(p url.Values) (any, *Fault) {
	types := list(p, "InstanceType")
	products := list(p, "ProductDescription")
	var start time.Time
	if v := p.Get("StartTime"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return nil, badParam("StartTime %q is not an ISO 8601 time", v)
		}
		start = t
	}
	maxResults := 1000
	if v := p.Get("MaxResults"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 5 || n > 1000 {
			return nil, badParam("MaxResults %q must be between 5 and 1000", v)
		}
		maxResults = n
	}
	offset := 0
	if v := p.Get("NextToken"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, &Fault{http.StatusBadRequest, "InvalidNextToken", "The specified token is invalid."}
		}
		offset = n
	}
	// Newest first; for each (type, zone, product) the newest entry at or
	// before start is kept as the price in effect then.
	hist := slices.Clone(s.spot)
	slices.SortStableFunc(hist, func(a, b spotPrice) int { return b.at.Compare(a.at) })
	type key struct{ typ, zone, product string }
	inEffect := map[key]bool{}
	var match []spotPrice
	for _, e := range hist {
		if len(types) > 0 && !slices.Contains(types, e.typ) || len(products) > 0 && !slices.Contains(products, e.product) {
			continue
		}
		k := key{e.typ, e.zone, e.product}
		if !start.IsZero() && !e.at.After(start) {
			if inEffect[k] {
				continue
			}
			inEffect[k] = true
		}
		match = append(match, e)
	}
	type item struct {
		AvailabilityZone   string `xml:"availabilityZone"`
		InstanceType       string `xml:"instanceType"`
		ProductDescription string `xml:"productDescription"`
		SpotPrice          string `xml:"spotPrice"`
		Timestamp          string `xml:"timestamp"`
	}
	type resp struct {
		XMLName   xml.Name `xml:"DescribeSpotPriceHistoryResponse"`
		Xmlns     string   `xml:"xmlns,attr"`
		RequestID string   `xml:"requestId"`
		Items     []item   `xml:"spotPriceHistorySet>item"`
		NextToken string   `xml:"nextToken,omitempty"`
	}
	out := resp{Xmlns: xmlns, RequestID: "fake-request"}
	if offset > len(match) {
		offset = len(match)
	}
	end := min(len(match), offset+maxResults)
	for _, e := range match[offset:end] {
		out.Items = append(out.Items, item{e.zone, e.typ, e.product, strconv.FormatFloat(e.price, 'f', 6, 64), e.at.UTC().Format(time.RFC3339)})
	}
	if end < len(match) {
		out.NextToken = strconv.Itoa(end)
	}
	return out, nil
}
