#!/bin/sh
# First boot of a node, before Asterisk starts (PJSIP transports do not
# reload): read the public address and VPC range from IMDSv2 and the
# ELASTIDIAL_* settings from user data, generate the AMI secret, and render
# the configuration. User data is parsed, never executed.
set -eu

imds=http://169.254.169.254/latest
token=$(curl -fsS -X PUT "$imds/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 300")
md() { curl -fsS -H "X-aws-ec2-metadata-token: $token" "$imds/$1"; }

PUBLIC_IPV4=$(md meta-data/public-ipv4)
mac=$(md meta-data/mac)
VPC_CIDR=$(md "meta-data/network/interfaces/macs/$mac/vpc-ipv4-cidr-block")
export PUBLIC_IPV4 VPC_CIDR

umask 077
env_file=/etc/elastidial/node.env
: > "$env_file"
md user-data | while IFS= read -r line || [ -n "$line" ]; do
	case "$line" in
	'' | '#'*) continue ;;
	ELASTIDIAL_CONTROLLER_URL=* | ELASTIDIAL_CLUSTER_SECRET=* | ELASTIDIAL_CAPACITY=* | \
		ELASTIDIAL_TRUNK_NAME=* | ELASTIDIAL_TRUNK_HOST=* | ELASTIDIAL_TRUNK_USER=* | ELASTIDIAL_TRUNK_PASSWORD=*)
		printf '%s\n' "$line" >> "$env_file" ;;
	*) echo "first-boot: ignoring unknown user data line" >&2 ;;
	esac
done
ELASTIDIAL_AMI_SECRET=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf 'ELASTIDIAL_AMI_SECRET=%s\n' "$ELASTIDIAL_AMI_SECRET" >> "$env_file"

set -a
# shellcheck disable=SC1090
. "$env_file"
set +a
: "${ELASTIDIAL_CONTROLLER_URL:?user data lacks ELASTIDIAL_CONTROLLER_URL}"
: "${ELASTIDIAL_TRUNK_NAME:?user data lacks ELASTIDIAL_TRUNK_NAME}"

render=/usr/local/sbin/elastidial-render-asterisk-conf
"$render" /usr/share/elastidial/asterisk /etc/asterisk
chown -R root:asterisk /etc/asterisk
chmod -R g+rX,o-rwx /etc/asterisk
# The agent writes the controller's trunks here (pjsip.conf includes
# them); files take the asterisk group, which reads them.
install -d -m 2750 -o elastidial -g asterisk /etc/asterisk/elastidial
