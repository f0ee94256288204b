#!/bin/sh
# Runs once inside the image build: Asterisk from a pinned, checksummed
# release with only the modules modules.conf loads, chrony, fd limits, the
# agent and its units. Nothing secret is written here.
set -eu

: "${ASTERISK_VERSION:?}" "${ASTERISK_SHA256:?}" "${PJPROJECT_VERSION:?}" "${PJPROJECT_SHA256:?}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q build-essential curl ca-certificates libedit-dev libjansson-dev libxml2-dev \
	uuid-dev libsqlite3-dev libssl-dev pkg-config bzip2 chrony gettext-base asterisk-core-sounds-en-wav

# The same build the test suite runs (scripts/asterisk): release sources
# checked against pinned SHA-256s, exactly the modules modules.conf loads.
src=/usr/src/asterisk-sources
mkdir -p "$src"
curl -fsSLo "$src/asterisk-${ASTERISK_VERSION}.tar.gz" \
	"https://downloads.asterisk.org/pub/telephony/asterisk/releases/asterisk-${ASTERISK_VERSION}.tar.gz"
curl -fsSLo "$src/pjproject-${PJPROJECT_VERSION}.tar.bz2" \
	"https://raw.githubusercontent.com/asterisk/third-party/master/pjproject/${PJPROJECT_VERSION}/pjproject-${PJPROJECT_VERSION}.tar.bz2"
printf '%s  %s\n%s  %s\n' "$ASTERISK_SHA256" "asterisk-${ASTERISK_VERSION}.tar.gz" \
	"$PJPROJECT_SHA256" "pjproject-${PJPROJECT_VERSION}.tar.bz2" >"$src/SHA256SUMS"
ASTERISK_VERSION=$ASTERISK_VERSION PJPROJECT_VERSION=$PJPROJECT_VERSION \
	sh /tmp/build-asterisk.sh "$src" / /tmp/asterisk-conf/modules.conf

id asterisk >/dev/null 2>&1 || useradd --system --home /var/lib/asterisk --shell /usr/sbin/nologin asterisk
install -d -o asterisk -g asterisk /var/lib/asterisk/sounds /var/log/asterisk /var/spool/asterisk /var/run/asterisk
# Campaign prompts (written by the agent, read by Asterisk) and recordings
# (written by Asterisk, uploaded and removed by the agent).
install -d -m 2775 -o root -g asterisk /var/lib/asterisk/sounds/elastidial /var/spool/asterisk/elastidial-recordings
ln -sfn /usr/share/asterisk/sounds/en_US_f_Allison /var/lib/asterisk/sounds/en
install -d -m 0750 -g asterisk /etc/asterisk
install -d /usr/share/elastidial/asterisk
install -m 0644 /tmp/asterisk-conf/*.conf /tmp/asterisk-conf/*.template /usr/share/elastidial/asterisk/
install -m 0755 /tmp/render-asterisk-conf.sh /usr/local/sbin/elastidial-render-asterisk-conf
# The agent runs as its own unprivileged user, in group asterisk for the
# prompt and recording folders above; its state is its own.
id elastidial >/dev/null 2>&1 || useradd --system --home /var/lib/elastidial --shell /usr/sbin/nologin -G asterisk elastidial
install -d -m 0700 /etc/elastidial
install -d -o elastidial -g elastidial -m 0700 /var/lib/elastidial
install -m 0755 /tmp/node-agent /usr/local/bin/node-agent
install -m 0755 /tmp/first-boot.sh /usr/local/sbin/elastidial-first-boot
install -m 0644 /tmp/systemd/*.service /etc/systemd/system/
install -d /etc/systemd/system/asterisk.service.d
printf '[Service]\nLimitNOFILE=65536\n' > /etc/systemd/system/asterisk.service.d/limits.conf
systemctl enable chrony elastidial-first-boot.service asterisk.service node-agent.service
