# kaas-join %post ($1: 1 = first install, 2 = upgrade).
install -d -m 0750 -o root -g root /etc/kaas-join
install -d -m 0700 -o root -g root /var/lib/kaas-join
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
	systemd-tmpfiles --create kaas-join.conf >/dev/null 2>&1 || :
fi
if [ "$1" -eq 1 ]; then
	# Enabled on first install only (an admin's later `disable` survives upgrades); not
	# started: it would wait for /etc/kaas-join/config.yaml anyway. Works without a running
	# systemd (image builds).
	systemctl --no-reload enable kaas-join.service >/dev/null 2>&1 || :
fi
