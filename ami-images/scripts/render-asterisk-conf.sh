#!/bin/sh
# Renders a node's Asterisk configuration: copies every *.conf of SRC to
# DEST and fills each *.conf.template into DEST/*.conf. Only the variables
# below are substituted; the dialplan's own ${...} are left to Asterisk.
#
#   render-asterisk-conf.sh SRC DEST
#
# From the environment (first-boot.sh sets them from IMDSv2 and user data;
# the end-to-end tests from their loopback set-up):
#   PUBLIC_IPV4, VPC_CIDR                  the instance's NAT facts (required)
#   ELASTIDIAL_TRUNK_NAME, _HOST           the carrier trunk (required)
#   ELASTIDIAL_TRUNK_USER, _PASSWORD       its credentials
#   ELASTIDIAL_AMI_SECRET                  the agent's AMI secret (required)
#   ELASTIDIAL_SIP_BIND   = 0.0.0.0:5060   PJSIP transport address
#   ELASTIDIAL_AMI_BIND   = 127.0.0.1      AMI address and port
#   ELASTIDIAL_AMI_PORT   = 5038
#   ELASTIDIAL_AGI_ADDR   = 127.0.0.1:4573 the agent's FastAGI server
set -eu
[ $# -eq 2 ] || {
	echo "usage: $0 SRC DEST" >&2
	exit 2
}
src=$1
dest=$2
: "${PUBLIC_IPV4:?PUBLIC_IPV4 is required}" "${VPC_CIDR:?VPC_CIDR is required}"
: "${ELASTIDIAL_TRUNK_NAME:?ELASTIDIAL_TRUNK_NAME is required}" "${ELASTIDIAL_TRUNK_HOST:?ELASTIDIAL_TRUNK_HOST is required}"
: "${ELASTIDIAL_AMI_SECRET:?ELASTIDIAL_AMI_SECRET is required}"
: "${ELASTIDIAL_TRUNK_USER:=}" "${ELASTIDIAL_TRUNK_PASSWORD:=}"
: "${ELASTIDIAL_SIP_BIND:=0.0.0.0:5060}" "${ELASTIDIAL_AMI_BIND:=127.0.0.1}" "${ELASTIDIAL_AMI_PORT:=5038}"
: "${ELASTIDIAL_AGI_ADDR:=127.0.0.1:4573}"
export PUBLIC_IPV4 VPC_CIDR ELASTIDIAL_TRUNK_NAME ELASTIDIAL_TRUNK_HOST ELASTIDIAL_TRUNK_USER \
	ELASTIDIAL_TRUNK_PASSWORD ELASTIDIAL_AMI_SECRET ELASTIDIAL_SIP_BIND ELASTIDIAL_AMI_BIND \
	ELASTIDIAL_AMI_PORT ELASTIDIAL_AGI_ADDR
# A value with a newline would inject configuration lines.
for v in "$PUBLIC_IPV4" "$VPC_CIDR" "$ELASTIDIAL_TRUNK_NAME" "$ELASTIDIAL_TRUNK_HOST" "$ELASTIDIAL_TRUNK_USER" \
	"$ELASTIDIAL_TRUNK_PASSWORD" "$ELASTIDIAL_AMI_SECRET" "$ELASTIDIAL_SIP_BIND" "$ELASTIDIAL_AMI_BIND" \
	"$ELASTIDIAL_AMI_PORT" "$ELASTIDIAL_AGI_ADDR"; do
	case "$v" in *'
'* | *';'*)
		echo "$0: a setting holds a newline or ';'" >&2
		exit 2
		;;
	esac
done
# shellcheck disable=SC2016 # the names, for envsubst, not their values
vars='${PUBLIC_IPV4} ${VPC_CIDR} ${ELASTIDIAL_TRUNK_NAME} ${ELASTIDIAL_TRUNK_HOST} ${ELASTIDIAL_TRUNK_USER}
${ELASTIDIAL_TRUNK_PASSWORD} ${ELASTIDIAL_AMI_SECRET} ${ELASTIDIAL_SIP_BIND} ${ELASTIDIAL_AMI_BIND}
${ELASTIDIAL_AMI_PORT} ${ELASTIDIAL_AGI_ADDR}'

umask 027
mkdir -p "$dest"
for f in "$src"/*.conf; do
	cp "$f" "$dest/"
done
for t in "$src"/*.conf.template; do
	out=$dest/$(basename "$t" .template)
	envsubst "$vars" <"$t" >"$out.tmp"
	mv "$out.tmp" "$out"
done
