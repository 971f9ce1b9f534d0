#!/bin/sh
# The deepfaked system user (run as root by `make install` and
# scripts/systemd-live.sh): in video for V4L2 cameras and, where udev made it,
# render for GPUs' /dev/dri nodes. The units take the groups from the user
# rather than SupplementaryGroups=, which fails the start if a group is missing.
set -eu
getent passwd deepfaked >/dev/null ||
	useradd --system --user-group --home-dir /var/lib/deepfaked --no-create-home \
		--shell /usr/sbin/nologin --groups video deepfaked
if getent group render >/dev/null; then
	usermod --append --groups render deepfaked
fi
