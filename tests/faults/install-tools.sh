#!/bin/sh
# Installs the Debian tools the fault suite injects faults with (idempotent, quiet).
# Without root or apt-get it installs nothing: the tests that need a tool skip and say so.
set -u
missing=""
need() { command -v "$1" >/dev/null 2>&1 || missing="$missing $2"; }
need strace strace
need faketime faketime
need fiu-run fiu-utils
need capsh libcap2-bin
need mkfs.ext4 e2fsprogs
need e2fsck e2fsprogs
ldconfig -p 2>/dev/null | grep -q 'libfuse\.so\.2' || missing="$missing libfuse2"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "fault suite: not installing$missing (needs root and apt-get); those tests skip"
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
echo "fault suite: installing$missing"
apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1 ||
	{ apt-get update -qq >/dev/null 2>&1 &&
		apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1; } ||
	echo "fault suite: could not install$missing; those tests skip"
exit 0
