# kaas-join %preun ($1: 0 = removal, 1 = upgrade).
if [ "$1" -eq 0 ]; then
	# Stops kaas-join and so its kubelet, and removes the enablement links.
	systemctl --no-reload disable --now kaas-join.service >/dev/null 2>&1 || :
	# Only disabled: it is RequiredBy=kubelet.service when enabled, and stopping it would stop
	# kubelet.service with it.
	systemctl --no-reload disable kaas-join-oneshot.service >/dev/null 2>&1 || :
fi
