#!/bin/sh
# Configure Postfix from the environment, then run it in the foreground.
#   MAIL_DOMAINS   the domains it delivers (space separated), e.g. "example.test"
#   MAIL_NETWORKS  who may hand it mail, e.g. "172.16.0.0/12" (the compose network)
#   RELAYHOST      where its outbound mail goes, e.g. "[gateway-1]:2525" (empty: the MX)
#   FALLBACK_RELAY where it goes when RELAYHOST does not answer, e.g. "[gateway-2]:2525"
set -eu
: "${MAIL_DOMAINS:?set MAIL_DOMAINS}"
: "${MAIL_NETWORKS:=172.16.0.0/12 10.0.0.0/8 192.168.0.0/16}"
: "${RELAYHOST:=}"
: "${FALLBACK_RELAY:=}"
# "No configuration" at install: start from Debian's template
[ -f /etc/postfix/main.cf ] || cp /usr/share/postfix/main.cf.debian /etc/postfix/main.cf
[ -f /etc/aliases ] || printf 'postmaster: root\n' > /etc/aliases
postconf -e \
  "maillog_file = /dev/stdout" \
  "inet_interfaces = all" \
  "inet_protocols = ipv4" \
  "mydestination =" \
  "mynetworks = 127.0.0.0/8 ${MAIL_NETWORKS}" \
  "smtpd_recipient_restrictions = permit_mynetworks, reject" \
  "virtual_mailbox_domains = ${MAIL_DOMAINS}" \
  "virtual_mailbox_base = /var/mail/vhosts" \
  "virtual_mailbox_maps = regexp:/etc/postfix/vmailbox" \
  "virtual_uid_maps = static:5000" "virtual_gid_maps = static:5000" \
  "relayhost = ${RELAYHOST}" \
  "smtp_fallback_relay = ${FALLBACK_RELAY}"
# every address of the domains: its own Maildir, domain/user/
printf '/^(.+)@(.+)$/ $2/$1/\n' > /etc/postfix/vmailbox
mkdir -p /var/mail/vhosts && chown 5000:5000 /var/mail/vhosts
newaliases
exec postfix start-fg
