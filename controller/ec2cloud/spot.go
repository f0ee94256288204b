package ec2cloud

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// SpotPrices asks DescribeSpotPriceHistory for the Linux spot price now in
// effect of each configured instance type (types, when InstanceTypes is
// empty: the launch template's type is unknown here). A type is priced at
// its dearest zone: the budget cap must hold whichever zone a launch lands
// in. Types EC2 reports no price for are left out.
func (c *Cloud) SpotPrices(ctx context.Context, types_ ...string) (map[string]float64, error) {
	if len(types_) == 0 {
		types_ = c.cfg.InstanceTypes
	}
	if len(types_) == 0 {
		return nil, errors.New("spot prices: no instance type to price")
	}
	in := &ec2.DescribeSpotPriceHistoryInput{
		StartTime:           aws.Time(c.clock.Now()),
		ProductDescriptions: []string{"Linux/UNIX"},
		MaxResults:          aws.Int32(1000),
	}
	for _, t := range types_ {
		in.InstanceTypes = append(in.InstanceTypes, types.InstanceType(t))
	}
	type key struct{ typ, zone string }
	latest := map[key]types.SpotPrice{}
	for pages := 0; ; pages++ {
		if pages > 1000 {
			return nil, errors.New("spot prices: pagination does not end")
		}
		out, err := c.api.DescribeSpotPriceHistory(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("spot prices: %w", err)
		}
		for _, sp := range out.SpotPriceHistory {
			k := key{string(sp.InstanceType), aws.ToString(sp.AvailabilityZone)}
			if old, ok := latest[k]; !ok || aws.ToTime(sp.Timestamp).After(aws.ToTime(old.Timestamp)) {
				latest[k] = sp
			}
		}
		if aws.ToString(out.NextToken) == "" {
			break
		}
		in.NextToken = out.NextToken
	}
	prices := map[string]float64{}
	for k, sp := range latest {
		v, err := strconv.ParseFloat(aws.ToString(sp.SpotPrice), 64)
		if err != nil || !(v > 0) {
			return nil, fmt.Errorf("spot prices: %s in %s: price %q is not a positive number", k.typ, k.zone, aws.ToString(sp.SpotPrice))
		}
		prices[k.typ] = max(prices[k.typ], v)
	}
	return prices, nil
}

// Zones lists the availability zones of the configured subnets, in their
// order (DescribeSubnets, once): the scaler spreads launches across them.
func (c *Cloud) Zones(ctx context.Context) ([]string, error) {
	c.mu.Lock()
	sz := c.subnetZone
	c.mu.Unlock()
	if sz == nil {
		out, err := c.api.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: c.cfg.Subnets})
		if err != nil {
			return nil, fmt.Errorf("zones of the subnets: %w", err)
		}
		sz = map[string]string{}
		for _, s := range out.Subnets {
			sz[aws.ToString(s.SubnetId)] = aws.ToString(s.AvailabilityZone)
		}
		c.mu.Lock()
		c.subnetZone = sz
		c.mu.Unlock()
	}
	var zones []string
	for _, s := range c.cfg.Subnets {
		if z := sz[s]; z != "" && !slices.Contains(zones, z) {
			zones = append(zones, z)
		}
	}
	return zones, nil
}
