# kaas-join %postun ($1: 0 = removal, 1 = upgrade).
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -ge 1 ]; then
	# Upgrade: restart the new binary if it was running (kubelet restarts with it; pods keep
	# running in the container runtime).
	systemctl try-restart kaas-join.service >/dev/null 2>&1 || :
fi
