package ec2cloud

import (
	"context"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// checkIDs sorts, dedupes and validates instance ids for a call named op.
func checkIDs(op string, ids []string) ([]string, error) {
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	for i, id := range ids {
		if !instanceIDRE.MatchString(id) || len(id) > 19 {
			return nil, fmt.Errorf("%s: %w: ids[%d] %q is not an instance id", op, ErrInvalidRequest, i, id)
		}
	}
	return ids, nil
}

// Stop parks instances for the warm pool: StopInstances, hibernating
// when asked. An instance launched without hibernation configured is
// stopped plainly instead (EC2 refuses the hibernation). Stopping an
// instance already stopping or stopped changes nothing.
func (c *Cloud) Stop(ctx context.Context, ids []string, hibernate bool) error {
	ids, err := checkIDs("stop", ids)
	if err != nil {
		return err
	}
	for len(ids) > 0 {
		n := min(len(ids), terminateBatch)
		_, err := c.api.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: ids[:n], Hibernate: aws.Bool(hibernate)})
		if err != nil && hibernate && errorCode(err) == "UnsupportedHibernationConfiguration" {
			c.log.Warn("hibernation not configured on these nodes: stopping them plainly", "nodes", ids[:n])
			_, err = c.api.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: ids[:n]})
		}
		if err != nil {
			return fmt.Errorf("stop %d instances: %w", n, err)
		}
		ids = ids[n:]
	}
	return nil
}

// Start starts parked instances. EC2 may refuse for capacity
// (InsufficientInstanceCapacity), as it may a launch: the error says so,
// and the scaler launches instead.
func (c *Cloud) Start(ctx context.Context, ids []string) error {
	ids, err := checkIDs("start", ids)
	if err != nil {
		return err
	}
	for len(ids) > 0 {
		n := min(len(ids), terminateBatch)
		if _, err := c.api.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: ids[:n]}); err != nil {
			if capacityCodes[errorCode(err)] {
				return fmt.Errorf("start %d instances: %w: %w", n, ErrNoCapacity, err)
			}
			return fmt.Errorf("start %d instances: %w", n, err)
		}
		ids = ids[n:]
	}
	return nil
}
