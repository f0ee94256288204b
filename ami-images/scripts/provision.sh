#!/bin/sh
# Runs once inside the image build: Asterisk from a pinned, checksummed
# release with only the modules modules.conf loads, chrony, fd limits, the
# agent and its units. Nothing secret is written here.
set -eu

: "${ASTERISK_VERSION:?}" "${ASTERISK_SHA256:?}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q build-essential curl ca-certificates libedit-dev libjansson-dev libxml2-dev \
	uuid-dev libsqlite3-dev libssl-dev chrony gettext-base

cd /usr/src
tarball="asterisk-${ASTERISK_VERSION}.tar.gz"
curl -fsSLo "$tarball" "https://downloads.asterisk.org/pub/telephony/asterisk/releases/${tarball}"
echo "${ASTERISK_SHA256}  ${tarball}" | sha256sum -c -
tar xzf "$tarball"
cd "asterisk-${ASTERISK_VERSION}"
./configure --with-jansson-bundled --with-pjproject-bundled >/dev/null
make menuselect.makeopts
# Everything off, then only what an outbound IVR dialer needs.
menuselect/menuselect --disable-all \
	--enable res_timing_timerfd --enable res_pjproject --enable res_sorcery_config --enable res_sorcery_memory \
	--enable res_sorcery_astdb --enable res_pjsip --enable res_pjsip_session --enable res_pjsip_sdp_rtp \
	--enable res_pjsip_nat --enable res_pjsip_outbound_registration --enable res_pjsip_outbound_authenticator_digest \
	--enable res_pjsip_endpoint_identifier_ip --enable res_pjsip_caller_id --enable res_pjsip_rfc3326 \
	--enable res_pjsip_logger --enable chan_pjsip --enable res_rtp_asterisk --enable pbx_config --enable res_agi \
	--enable res_speech --enable app_playback --enable app_dial --enable app_amd --enable app_stack \
	--enable func_channel --enable func_callerid --enable res_musiconhold --enable codec_ulaw --enable codec_alaw \
	--enable codec_gsm --enable format_wav --enable format_pcm --enable format_sln --enable format_gsm \
	menuselect.makeopts
make -j"$(nproc)" >/dev/null
make install >/dev/null

id asterisk >/dev/null 2>&1 || useradd --system --home /var/lib/asterisk --shell /usr/sbin/nologin asterisk
# The agent runs as its own unprivileged user: it owns its state and the
# campaign audio folder (Asterisk reads the prompts, 0644), nothing else.
id elastidial >/dev/null 2>&1 || useradd --system --home /var/lib/elastidial --shell /usr/sbin/nologin elastidial
install -d -o asterisk -g asterisk /etc/asterisk /var/log/asterisk /var/spool/asterisk /var/run/asterisk
install -d -o elastidial -g asterisk -m 0755 /var/lib/asterisk/sounds/elastidial
install -m 0644 /tmp/asterisk-conf/*.conf /etc/asterisk/
install -m 0644 /tmp/asterisk-conf/*.template /etc/asterisk/
install -d -m 0700 /etc/elastidial
install -d -o elastidial -g elastidial -m 0700 /var/lib/elastidial
install -m 0755 /tmp/node-agent /usr/local/bin/node-agent
install -m 0755 /tmp/first-boot.sh /usr/local/sbin/elastidial-first-boot
install -m 0644 /tmp/systemd/*.service /etc/systemd/system/
install -d /etc/systemd/system/asterisk.service.d
printf '[Service]\nLimitNOFILE=65536\n' > /etc/systemd/system/asterisk.service.d/limits.conf
systemctl enable chrony elastidial-first-boot.service asterisk.service node-agent.service
